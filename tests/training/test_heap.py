"""mapped_large_allocations: inside the block large allocations come from mmap, after it from the heap.

Observed through glibc's own accounting (``mallinfo2().hblks``: the number of live mmapped chunks),
with real ``malloc`` calls, not by reading the setting back.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

import pytest

from turngym.training.config import TrainConfig
from turngym.training.heap import mapped_large_allocations, set_mmap_threshold

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.malloc.argtypes, libc.malloc.restype = [ctypes.c_size_t], ctypes.c_void_p
    libc.free.argtypes, libc.free.restype = [ctypes.c_void_p], None
    libc.mallinfo2.restype = _MallInfo2
    return libc


def _is_mmapped(libc: ctypes.CDLL, size: int) -> bool:
    """Whether a live ``malloc(size)`` adds an mmapped chunk."""
    before = libc.mallinfo2().hblks
    ptr = libc.malloc(size)
    try:
        return libc.mallinfo2().hblks == before + 1
    finally:
        libc.free(ptr)


@glibc_only
def test_allocations_above_the_threshold_are_mapped_inside_the_block_and_heap_served_after_it() -> None:
    libc = _libc()
    with mapped_large_allocations(1.0) as applied:
        assert applied
        assert _is_mmapped(libc, 2 * 2**20)  # 2 MiB ≥ 1 MiB: its own mapping, unmapped when freed
        assert not _is_mmapped(libc, 256 * 2**10)  # below the threshold: the heap
    assert not _is_mmapped(libc, 2 * 2**20)  # threshold back at 32 MiB
    assert _is_mmapped(libc, 40 * 2**20)


@glibc_only
def test_the_threshold_is_restored_when_the_block_raises() -> None:
    libc = _libc()
    with pytest.raises(RuntimeError, match="evaluation failed"), mapped_large_allocations(1.0):
        raise RuntimeError("evaluation failed")
    assert not _is_mmapped(libc, 2 * 2**20)


def test_none_leaves_the_allocator_alone() -> None:
    with mapped_large_allocations(None) as applied:
        assert applied is False


@pytest.mark.parametrize("bad", [0, -1, 33 * 2**20])
def test_a_threshold_glibc_would_refuse_is_an_error_naming_the_value(bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        set_mmap_threshold(bad)


def test_the_config_refuses_a_threshold_above_32_mib() -> None:
    with pytest.raises(ValueError, match="mmap_threshold_mib"):
        TrainConfig.model_validate({"eval": {"mmap_threshold_mib": 64}})
