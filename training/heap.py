"""Hand the heap's freed pages back to the operating system between phases of a run.

A CPU run allocates and frees tensors of every size in every phase (rollouts, learner passes,
evaluations). glibc serves allocations below its mmap threshold from heap arenas, and that threshold
rises on its own to 32 MiB as large blocks are freed, so most activation buffers end up on the heap.
Freed heap memory is reused but only returned to the system when it sits at the top of an arena: a
long run's resident memory then ratchets up step by step although its live memory does not. On the
household recipe the learner's resident memory grew 0.3-0.7 GiB per step (6.7 to 10.2 GiB in eight
steps) while a stand-alone loop of the same passes stayed at 5.8 GiB; with the mmap threshold pinned
(``MALLOC_MMAP_THRESHOLD_``) it stayed flat, but every large allocation then faults in fresh pages
and the run took a fifth to a third longer (docs/recipes.md).

:func:`release_free_heap` calls ``malloc_trim(0)``, which returns every whole free page of every
arena (not only the top) at the cost of one pass over the arenas, once per phase rather than once
per allocation. Elsewhere than glibc it does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import platform
from collections.abc import Callable


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim``, or ``None`` where the C library is another (musl, macOS, Windows)."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    name = ctypes.util.find_library("c") or "libc.so.6"
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim


def release_free_heap() -> bool:
    """Return the free pages of every malloc arena to the OS.

    Returns ``True`` if the C library is glibc and memory was released, ``False`` if nothing was
    (another C library, or nothing free to return). Never changes live objects: only resident
    memory that no allocation holds is given back.
    """
    trim = _malloc_trim()
    return bool(trim(0)) if trim is not None else False


__all__ = ["release_free_heap"]
