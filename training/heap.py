"""Keep a phase's large allocations off glibc's heap, so that freeing them returns the memory.

A CPU run allocates and frees tensors of every size in every phase. glibc serves allocations below
its *mmap threshold* from heap arenas, and that threshold rises on its own up to 32 MiB as large
blocks are freed, so most generation buffers (a batch's KV cache per layer, re-allocated as it grows
each decoding step) end up on the heap. Freed heap space is reused only by requests that fit in it,
so a phase that keeps re-allocating slightly larger blocks grows the heap although its live memory
does not. On the household recipe the final evaluation added 3-6 GiB to the ~10 GiB the run held (16.5 GiB);
with ``MALLOC_MMAP_THRESHOLD_=1048576`` for the whole process the same run peaked at 12.8 GiB, but
every step then faulted in fresh pages and the run took a fifth to a third longer (docs/recipes.md).
Trimming free pages between phases (``malloc_trim``) did not lower the peak: the growth happens
inside a phase.

:func:`mapped_large_allocations` applies the lever to one phase only (the trainer's evaluations,
``eval.mmap_threshold_mib``): on entry it returns the heap's free pages and pins the threshold, on
exit it sets the threshold to glibc's dynamic ceiling (32 MiB), where a long run's threshold ends up
anyway. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from collections.abc import Iterator
from contextlib import contextmanager

M_MMAP_THRESHOLD = -3
"""``mallopt`` parameter number (glibc ``malloc.h``)."""
DYNAMIC_CEILING_BYTES = 32 * 2**20
"""The largest value glibc's self-adjusting threshold reaches on 64-bit systems."""


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """The C library if it is glibc (``mallopt`` and ``malloc_trim`` exist), else ``None``."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    libc.mallopt.argtypes, libc.mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    libc.malloc_trim.argtypes, libc.malloc_trim.restype = [ctypes.c_size_t], ctypes.c_int
    return libc


def set_mmap_threshold(threshold_bytes: int) -> bool:
    """Serve allocations of at least ``threshold_bytes`` by ``mmap`` from now on (glibc only).

    Returns ``True`` where it took effect, ``False`` on another C library. Raises ``ValueError`` for a
    threshold outside ``1 .. 32 MiB`` (glibc refuses larger ones).
    """
    if not 0 < threshold_bytes <= DYNAMIC_CEILING_BYTES:
        raise ValueError(f"mmap threshold must be in 1 .. {DYNAMIC_CEILING_BYTES} bytes (32 MiB), got {threshold_bytes!r}")
    libc = _libc()
    return libc is not None and bool(libc.mallopt(M_MMAP_THRESHOLD, int(threshold_bytes)))


@contextmanager
def mapped_large_allocations(threshold_mib: float | None) -> Iterator[bool]:
    """Inside the block, allocations of ``threshold_mib`` MiB or more bypass the heap.

    ``None`` leaves the allocator alone. Yields whether the setting took effect (glibc). On exit the
    threshold becomes 32 MiB (glibc's dynamic ceiling), also when the block raises. Live objects are
    never moved or freed: only where future allocations come from changes.
    """
    libc = _libc() if threshold_mib is not None else None
    if libc is None:
        yield False
        return
    libc.malloc_trim(0)  # the previous phase's free heap pages, before this phase's peak
    applied = set_mmap_threshold(max(1, round(threshold_mib * 2**20)))
    try:
        yield applied
    finally:
        set_mmap_threshold(DYNAMIC_CEILING_BYTES)


__all__ = ["mapped_large_allocations", "set_mmap_threshold"]
