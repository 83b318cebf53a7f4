"""train/allocator.py: `run.malloc=retain` keeps freed memory in the process, so a buffer freed and allocated again
every step is not faulted in again; `glibc` leaves glibc's defaults. Measured in a fresh interpreter each, so the
test process's own allocator is left as it is."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from gradient_quarantine.train.allocator import set_allocator

# 100 MB (above glibc's adaptive mmap threshold, which stops at 32 MiB) malloc'd, written and freed 10 times: with
# glibc's defaults each round maps it afresh and faults in every page; with `retain` it comes from the heap, goes back
# to the heap's top when freed, and is reused without a fault. (torch's own buffers follow the same rules; how well a
# whole training step's pattern is reused is what bench/bench_memory.py measures: no minor faults after step 1.)
PROGRAM = """
import ctypes, resource, sys
from gradient_quarantine.train.allocator import set_allocator
applied = set_allocator(sys.argv[1])
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def round():
    p = libc.malloc(100_000_000)
    ctypes.memset(p, 1, 100_000_000)
    libc.free(p)
round()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    round()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def faults(mode: str) -> tuple[bool, int]:
    """(applied, minor faults of rounds 2-11)."""
    out = subprocess.run([sys.executable, "-c", PROGRAM, mode], capture_output=True, text=True, check=True).stdout
    applied, n = out.split()
    return applied == "True", int(n)


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_retain_stops_refaulting_a_freed_buffer():
    applied, kept = faults("retain")
    default_applied, churned = faults("glibc")
    assert applied and not default_applied
    pages = 100_000_000 // 4096
    assert churned > 9 * pages  # glibc's defaults: faulted in again every round
    assert kept < pages // 100  # retained: reused without faults


def test_unknown_mode_fails_with_the_choices():
    with pytest.raises(ValueError, match="'retain' or 'glibc'"):
        set_allocator("jemalloc")
