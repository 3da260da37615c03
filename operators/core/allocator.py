"""glibc's allocator, set for the backup operator, whose worker threads free blocks of megabytes.

glibc serves a block above its mmap threshold (128 KiB at start) with its own mapping, returned on free.
But when such a block is freed it raises the threshold to that block's size (up to 32 MiB), so the
next blocks of that size come from an arena, where free space below a block still in use stays
resident. A backup frees blocks of megabytes (the 8 MiB upload part, compressed buffers, pages of a list)
in worker threads, and the space its threads' arenas held free grew with the run: after 200,000
objects, `malloc_trim` handed back 72 MiB of 237 MiB. Fixing the thresholds turns the dynamic
adjustment off: large blocks keep their own mappings, and free space at an arena's top goes back.

Only where the C library is glibc (`mallopt` and `malloc_trim` exist); elsewhere nothing changes.
"""

from __future__ import annotations

import ctypes
import logging

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 128 << 10  # glibc's own starting value, now fixed
TRIM_THRESHOLD = 256 << 10


def _libc() -> ctypes.CDLL | None:
    try:
        libc = ctypes.CDLL(None)
        libc.mallopt  # noqa: B018  (present on glibc; a missing symbol raises AttributeError)
        libc.malloc_trim  # noqa: B018
    except (OSError, AttributeError):
        return None
    return libc


def set_thresholds() -> bool:
    """Fix the mmap and trim thresholds (once, at start); False where the allocator is not glibc's."""
    libc = _libc()
    if libc is None:
        return False
    ok = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
              and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1)
    if not ok:
        logger.info("allocator: glibc refused the fixed mmap/trim thresholds; its defaults stay")
    return ok


def release_free_memory() -> None:
    """Give the free pages of every arena back to the system (after a big run; blocking: run it off the loop)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
