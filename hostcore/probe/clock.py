"""Convert the kernel's boot-time clock to nanoseconds since the epoch."""

from __future__ import annotations

import time


def boot_to_epoch_offset_ns(samples: int = 9) -> int:
    """The epoch time minus CLOCK_BOOTTIME, from the tightest of a few paired reads."""
    best: tuple[int, int] | None = None
    for _ in range(samples):
        before = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        wall = time.time_ns()
        after = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        if best is None or after - before < best[0]:
            best = (after - before, wall - (before + after) // 2)
    assert best is not None
    return best[1]
