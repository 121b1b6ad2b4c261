"""Fixtures shared by the model-facing agent tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def one_thread():
    """These models are tiny (or the test is about correctness): one intra-op thread is faster than
    two on a shared CI machine, where OpenMP barriers wait on other processes' time slices."""
    torch = pytest.importorskip("torch")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
