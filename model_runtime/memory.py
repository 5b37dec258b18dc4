"""Handing the heap a bundle load freed back to the kernel.

A load allocates far more than it keeps: the bundle's bytes, the parsed manifest, onnxruntime's
graph building, most of it in a worker thread's malloc arena. glibc keeps freed chunks for
reuse, so without a trim the pod's RSS stays at the load's peak (2.5 MiB more for 100 models,
docs/benchmarks.md, Runtime, memory). malloc_trim(0) returns the free pages of every arena; it
takes well under a millisecond. Other C libraries (musl) have no such call: nothing to do there.
"""

from __future__ import annotations

import ctypes
from collections.abc import Callable
from functools import cache


@cache
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (AttributeError, OSError):
        return None
    return trim


def release_freed_heap() -> bool:
    """Return freed heap pages to the kernel; False where the C library cannot (not glibc)."""
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
