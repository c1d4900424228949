"""Staged outputs: a run writes into a hidden folder and moves its results into place only when told to.

The pipelines publish only after the run's audit entry has committed, so an output never exists without
its audit entry, and a failure or kill mid-run leaves nothing under the output names. A kill -9 can leave
the hidden `.ifadit-staging-*` folder itself behind: it holds only unpublished results. When the kill came
after the batch's audit entry committed, the folder also holds that batch's commit record, and the next run
into the same folder publishes those results (`ifadit.pipeline.resume.recover_committed`); any other
leftover folder may be deleted.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from types import TracebackType

from ifadit.media.manifest import sidecar_path

STAGING_PREFIX = ".ifadit-staging-"


def move_into_place(staged: Path, target: Path) -> None:
    """Rename one staged result (and its sidecar, if any) to `target`, replacing what is there."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if sidecar_path(staged).exists():
        os.replace(sidecar_path(staged), sidecar_path(target))
    elif sidecar_path(target).exists():
        sidecar_path(target).unlink()  # a stale sidecar would shadow the embedded manifest
    if target.is_dir() and staged.is_dir():
        shutil.rmtree(target)
    os.replace(staged, target)


class Staging:
    """A hidden folder in `root` mirroring the final layout; use as a context manager (it always cleans up)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.folder: Path | None = None
        self._planned: dict[Path, Path] = {}  # staged path -> final path
        self._count = 0  # results staged so far (names stay unique across several publishes)

    def __enter__(self) -> Staging:
        self.root.mkdir(parents=True, exist_ok=True)
        self.folder = self.root / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        self.folder.mkdir()
        return self

    def path_for(self, target: Path) -> Path:
        """Where to write the result that will become `target` (its parent folders are created)."""
        if self.folder is None:
            raise RuntimeError("Staging.path_for called outside its `with` block")
        name = f"{self._count:06d}"
        self._count += 1
        staged = self.folder / name / target.name
        staged.parent.mkdir()
        self._planned[staged] = target
        return staged

    def drop(self, staged: Path) -> None:
        """Forget one staged result (its item failed) and delete whatever was written for it."""
        self._planned.pop(staged, None)
        shutil.rmtree(staged.parent, ignore_errors=True)

    def publish(self) -> list[Path]:
        """Move every staged result (and its sidecar) to its final path; returns the final paths."""
        published = []
        for staged, target in self._planned.items():
            if not staged.exists():
                continue
            move_into_place(staged, target)
            published.append(target)
        self._planned.clear()
        return published

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)
            self.folder = None
