"""glibc's allocator, told to keep freed memory for the next array instead of handing it back to the system.

A search allocates and frees arrays of 1-10 MB by the hundred: every candidate page decoded to float32
(5,500 cells x 96), its similarity maps, stage 1's score blocks. glibc serves such sizes by ``mmap``
and returns them at ``free``, so each new array starts as untouched pages the kernel must fault in and
zero, which costs more than filling them (a page's int8 codes converted to float32). Serving them from
the heap, and trimming the heap only past ``TRIM_THRESHOLD`` of free memory at its top, gives a search
the same results for less CPU (BENCHMARKS.md, "Serving under load"). The cost is memory a process keeps
after its largest search, up to that threshold.
"""

from __future__ import annotations

import ctypes
import sys

M_TRIM_THRESHOLD = -1  # glibc's malloc.h parameter numbers
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for this setting on 64-bit: larger arrays still use mmap
TRIM_THRESHOLD = 512 << 20


def reuse_freed_memory() -> bool:
    """Set this process's allocator so (see the module); False where it is not glibc (macOS, musl)."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt  # absent from musl
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
