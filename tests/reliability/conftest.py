"""Fixtures for the reliability tests: the fork server that runs the jobs the kill tests SIGKILL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.kill_jobs import JobServer


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JobServer]:
    """One fork server for the session: each job is a fork of a process that imported everything once."""
    with JobServer(tmp_path_factory.mktemp("jobs")) as started:
        yield started
