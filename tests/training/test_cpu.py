"""Training runs undo their process-wide CPU settings (flush-to-zero, thread count) when they end."""

from __future__ import annotations

import torch

from ifadit.training.cpu import torch_threads


def _subnormals_survive() -> bool:
    return (torch.tensor([1e-39]) * torch.tensor([1.0])).item() != 0.0


def test_denormals_flushed_during_the_run_and_restored_after() -> None:
    threads = torch.get_num_threads()
    assert _subnormals_survive()
    with torch_threads(1):
        assert not _subnormals_survive()
        assert torch.get_num_threads() == 1
    assert _subnormals_survive()
    assert torch.get_num_threads() == threads


def test_settings_are_restored_when_the_run_fails() -> None:
    try:
        with torch_threads(1):
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        pass
    assert _subnormals_survive()
