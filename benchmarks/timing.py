"""Timing shared by the benchmarks: wall times of repeated calls, and the fastest of them, the one least
disturbed by other work on a shared machine. Imported by the benchmark scripts from their own folder
(`python benchmarks/x_bench.py`)."""

from __future__ import annotations

import time
from collections.abc import Callable


def run_times(repeat: int, run: Callable[[], object], warm_up: bool = False) -> list[float]:
    """Wall seconds of `repeat` calls of `run`; with `warm_up`, after one untimed call."""
    if warm_up:
        run()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return times


def best_of(repeat: int, run: Callable[[], object], warm_up: bool = False) -> float:
    """Fastest of `repeat` calls of `run`, in seconds (`run_times`)."""
    return min(run_times(repeat, run, warm_up))
