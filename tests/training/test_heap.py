"""release_free_heap gives freed heap pages back to the OS (glibc) and touches nothing live."""

import ctypes
import os
import platform

import pytest

from turngym.training.heap import release_free_heap

glibc = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only")


def resident_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@glibc
def test_freed_memory_under_a_live_block_is_returned_and_the_live_block_is_kept():
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    chunk, count = 64 * 1024, 3200  # 200 MiB in heap-sized pieces
    blocks = [libc.malloc(chunk) for _ in range(count)]
    assert all(blocks)
    for b in blocks:
        ctypes.memset(b, 7, chunk)  # make every page resident
    keep = blocks.pop()  # the last block pins the top of the heap, so free() alone cannot shrink it
    for b in blocks:
        libc.free(b)
    before = resident_bytes()
    assert release_free_heap() is True
    released = before - resident_bytes()
    assert released > 100 * 2**20, f"only {released / 2**20:.0f} MiB of ~200 MiB freed heap went back to the OS"
    assert ctypes.string_at(keep, 16) == b"\x07" * 16  # the live block is untouched
    libc.free(keep)

