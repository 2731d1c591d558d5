"""Keep freed CPU memory in the process for reuse, so large activations are not page-faulted at every layer.

PyTorch's CPU allocator passes each tensor to the C library's ``malloc``. glibc serves blocks above its mmap
threshold with fresh ``mmap`` pages and unmaps them on ``free``, so a 512 x 512 slice's 16 MB activations are
mapped, page-faulted and zeroed by the kernel again at every layer of every pass. Measured on the shipped model
(one thread, self-ensemble 4): 1.02 s a slice, of which 0.27 s system time, against 0.70 s and no system time
with freed memory kept (docs/shipped_weights.md, "Speed"). PyTorch's performance tuning guide gets the same
effect by preloading jemalloc or tcmalloc (``LD_PRELOAD``), which an installed command cannot do for itself;
``mallopt`` sets it from inside the running process. The cost: memory freed after a peak stays with the
process (its resident size stays at the peak) until it exits.

Ours because neither torch nor MONAI exposes it. glibc only: elsewhere (macOS, Windows, musl) it does nothing,
and a user's own ``MALLOC_MMAP_THRESHOLD_`` / ``MALLOC_TRIM_THRESHOLD_`` (glibc's environment settings) are
left alone; a preloaded jemalloc or tcmalloc replaces glibc's ``malloc`` and is not affected.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["retain_freed_memory"]

#: ``mallopt`` parameters (glibc ``malloc.h``).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
#: Largest block served from the heap rather than by ``mmap``, and the free memory kept before trimming:
#: the largest values the C ``int`` argument takes.
_LIMIT = 2**31 - 1
_USER_SETTINGS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")

_done: bool | None = None


def retain_freed_memory() -> bool:
    """Serve blocks up to 2 GB from the heap and never give freed heap memory back to the system (glibc).

    Idempotent and process-wide. Returns whether the setting is in effect: False off glibc, or when the
    environment sets glibc's thresholds (the user's choice wins).
    """
    global _done
    if _done is not None:
        return _done
    _done = False
    if not sys.platform.startswith("linux") or any(os.environ.get(name) for name in _USER_SETTINGS):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return _done
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    return _done
