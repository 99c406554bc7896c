"""The garbage collector, tuned for a long stream of short-lived events."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

# Each event allocates dicts and tuples that reference counting frees at once, and
# the paths from packet to sink make no reference cycles. With the defaults (a young
# collection every 700 allocations, an older one every 10, a full one every 100 of
# those) the collector keeps walking the bounded tables of open connections: about
# a tenth of a `flows` run's CPU under load (interleaved runs, ab -c 32). Collected
# rarely instead: a young collection every 50,000 allocations, a full one about
# every 2.5 billion, which reference counting leaves little to find. (Thresholds as
# CPython 3.11 to 3.13 read them; Debian 12 has 3.11.)
STREAMING_THRESHOLDS = (50_000, 50, 1000)


@contextlib.contextmanager
def streaming_collection() -> Iterator[None]:
    """The collector tuned for streaming while the block runs; as it was afterwards."""
    before = gc.get_threshold()
    gc.set_threshold(*STREAMING_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
