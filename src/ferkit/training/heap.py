"""Keep the memory a training step frees in the process heap, so that the next step reuses it.

glibc's malloc serves a block larger than its mmap threshold (which adapts, but never beyond 32 MiB) with
its own `mmap` and returns it to the system on `free`. A training step that allocates such blocks then
takes fresh, zero-filled pages from the kernel for each of them, every step: seed_cnn's first block holds
64 × 64 × 46 × 46 floats (34.7 MB) per activation and gradient, some 22,000 page faults a step at batch 64;
kept, its epochs ran 1.2–1.45× faster on two cores (`benchmarks/freed_memory.py`, BENCHMARKS.md).

`reuse_freed_memory()` turns glibc's `mmap` off for the duration and keeps freed memory in the heap; on
leaving it turns `mmap` back on and hands the heap's free memory back to the system. Elsewhere than
glibc (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import platform
import threading
from collections.abc import Iterator
from contextlib import contextmanager

# mallopt parameters, from glibc's malloc.h
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_MAX = -4

_DURING = {M_MMAP_MAX: 0, M_TRIM_THRESHOLD: 1 << 30, M_TOP_PAD: 64 << 20}
# After: glibc's defaults for the number of mmaps and the top pad; the trim threshold glibc's own adaptation
# reaches once a block of the largest mmap threshold (32 MiB) has been freed (twice that threshold).
_AFTER = {M_MMAP_MAX: 65536, M_TRIM_THRESHOLD: 64 << 20, M_TOP_PAD: 128 << 10}

_lock = threading.Lock()
_users = 0


def _glibc() -> ctypes.CDLL | None:
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return None
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:
        return None


_LIBC = _glibc()


def _set(values: dict[int, int]) -> None:
    for parameter, value in values.items():
        _LIBC.mallopt(parameter, value)


def active() -> bool:
    """Whether freed memory is being kept in the heap now (inside some `reuse_freed_memory`, on glibc)."""
    return _users > 0


@contextmanager
def reuse_freed_memory() -> Iterator[None]:
    """Within the block, freed memory stays in the heap for the next allocation (glibc only; nests)."""
    global _users
    if _LIBC is None:
        yield
        return
    with _lock:
        if _users == 0:
            _set(_DURING)
        _users += 1
    try:
        yield
    finally:
        with _lock:
            _users -= 1
            if _users == 0:
                _set(_AFTER)
                _LIBC.malloc_trim(0)
