"""CPU settings for a training run, applied for its duration only and undone afterwards; `controlled`, the way
every `train_*` loop enters its `RunControl`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from ifadit.training.options import RunControl


@contextmanager
def torch_threads(threads: int | None) -> Iterator[None]:
    """Flush denormals (3-7x faster CPU steps) and use `threads` intra-op threads (None = torch's default).

    Both are process-wide settings, so they are undone when the run ends: the thread count comes back and
    denormals are handled normally again (torch's default; torch has no getter for the previous state).
    Leaving flush-to-zero on breaks IEEE-754 code that runs later in the process (e.g. Hypothesis floats).
    """
    torch.set_flush_denormal(True)
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        torch.set_flush_denormal(False)


@contextmanager
def controlled(control: RunControl | None) -> Iterator[RunControl]:
    """`control` (None: `RunControl()`) while its CPU thread count is applied (`torch_threads`)."""
    run = control if control is not None else RunControl()
    with torch_threads(run.threads):
        yield run
