"""How the training process's C allocator returns freed memory (`run.malloc`), set once when a run starts.

glibc's malloc hands a freed block back to the kernel when it was mmap'd (above the mmap threshold, which adapts up
to 32 MiB) or when it leaves more than the trim threshold free at the top of the heap. A training step frees and
re-allocates the same large buffers every step (activations of a 16 x 430-token batch, the sampler's packed weights:
~1.1 GiB a call), so each step faults them in again page by page, and the kernel zeroes every page: with the fused
head fixed (train/trl_compat.py) that was still 0.3-0.5 M minor faults and 5 % of the CPU in the kernel per demo step
(bench/README.md, "Memory churn"). `retain` keeps freed memory in the process for reuse: blocks up to
`MMAP_THRESHOLD` come from the heap, and the heap is trimmed only past `TRIM_THRESHOLD` free. Peak RSS is what
bench_memory.py measures beside it.

    >>> set_allocator("retain")   # `mallopt` through ctypes; a no-op (returns False) off glibc
"""

from __future__ import annotations

import ctypes
import ctypes.util
import platform

# mallopt parameter numbers (glibc's malloc.h)
M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD = -1, -2, -3
MMAP_THRESHOLD = 256 << 20  # blocks up to 256 MiB from the heap (a demo step's largest are ~100 MiB)
TRIM_THRESHOLD = 1 << 30  # give the heap's top back only when 1 GiB of it is free
TOP_PAD = 64 << 20  # grow the heap 64 MiB at a time


def set_allocator(mode: str) -> bool:
    """`retain`: keep freed memory for reuse (the settings above); `glibc`: leave glibc's defaults. True when the
    settings were applied (glibc only; elsewhere the allocator is left as it is)."""
    if mode not in ("retain", "glibc"):
        raise ValueError(f"run.malloc={mode!r}: 'retain' or 'glibc'")
    if mode == "glibc" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = ((M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD))
    return all(libc.mallopt(param, value) == 1 for param, value in settings)
