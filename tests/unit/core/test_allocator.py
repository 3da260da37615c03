"""The fixed allocator thresholds give freed large blocks back (operators/core/allocator.py). Each case runs
in a child process, as the operator does: frees blocks of megabytes while small blocks stay live after
them, which is what a backup's worker threads do, and reports how much of the freed space stays resident."""

from __future__ import annotations

import subprocess
import sys

import pytest

from operators.core import allocator

_CHILD = r"""
import sys
from operators.core import allocator

def rss_mib():
    with open("/proc/self/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmRSS:")) / 1024

if sys.argv[1] == "fixed":
    assert allocator.set_thresholds()
first = bytearray(8 << 20)  # freed: glibc's dynamic threshold rises past 8 MiB
del first
base = rss_mib()
blocks, live = [], []
for i in range(16):
    blocks.append(bytearray(8 << 20))  # 128 MiB written in 8 MiB blocks...
    live.append(bytes(200_000 + i))    # ...each followed by a small block that stays
blocks.clear()
print(f"{rss_mib() - base:.1f}")
"""


def _retained_mib(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", _CHILD, mode], check=True, capture_output=True, text=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(allocator._libc() is None, reason="the C library is not glibc")
def test_fixed_thresholds_return_freed_blocks_that_the_dynamic_threshold_keeps() -> None:
    dynamic, fixed = _retained_mib("dynamic"), _retained_mib("fixed")
    assert dynamic > 100, f"glibc's defaults kept {dynamic:.0f} MiB: this test no longer shows the problem"
    assert fixed < 16, f"{fixed:.0f} MiB of 128 freed stayed resident with the thresholds fixed"
