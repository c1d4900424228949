"""Progress a person can follow on stderr: a per-frame bar under the per-file bar while a video is processed.

`FrameBar` is the `on_frame(done, total)` callback the serial engine hands `anonymize_item` for a video; it
opens its tqdm bar on the first call (when the frame count is known) and removes it when the video is done.
Workers of other engines report per file only.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import TracebackType

from tqdm import tqdm

FrameProgress = Callable[[int, int], None]  # on_frame(frames done, frames in the video)


class FrameBar:
    """A tqdm bar in frames for one video, as a context manager; call it with (done, total)."""

    def __init__(self, name: str, *, enabled: bool) -> None:
        self.name, self.enabled = name, enabled
        self._bar: tqdm[None] | None = None

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = tqdm(
                total=total, desc=self.name, unit="frame", file=sys.stderr, position=1, leave=False
            )
        self._bar.update(done - self._bar.n)

    def __enter__(self) -> FrameBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
