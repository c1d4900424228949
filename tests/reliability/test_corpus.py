"""Replay every input that once broke a parser (tests/corpus/<target>/*.bin) through the same contract check."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.reliability import corpus
from tests.reliability.targets import CHECKS

CASES = [(target, path) for target in corpus.TARGETS for path in corpus.cases(target)]


def test_the_corpus_holds_the_found_cases() -> None:
    assert len(corpus.cases("manifest-jpeg")) >= 1 and len(corpus.cases("manifest-json")) >= 1


@pytest.mark.parametrize(("target", "path"), CASES, ids=[f"{t}/{p.name}" for t, p in CASES])
def test_corpus_input_gives_a_result_or_the_typed_error(target: str, path: Path, tmp_path: Path) -> None:
    CHECKS[target](path.read_bytes(), tmp_path)
