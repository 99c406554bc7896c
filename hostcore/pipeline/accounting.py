"""Counters for a run, and which of them are losses that sinks must hear about."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

# Counters under these names or prefixes mean events were or may have been lost.
# Units: records (kernel, decode), capture files, packets (plugin), events (sink writes,
# drops, undelivered, and those a signature raised on: its findings may be lost), flushes,
# DNS messages (malformed, truncated, segmented) and chains (evictions).
LOSS_COUNTERS = (
    "kernel_reserve_failures",
    "capture_errors.",  # capture files that break off: the rest of the file is unread
    "decode_errors.",
    "plugin_errors.",
    "signature_errors.",
    "sink_errors.",
    "sink_flush_failures.",
    "sink_drops.",  # events a sink's full queue turned away
    "sink_undelivered.",  # events a sink still held when it closed or the run ended
    "dns.malformed.",  # DNS answers whose names were lost
    "dns.truncated",
    "dns.tcp_segmented",
    "dns.evictions",
)


class Accounting:
    """Run counters, plus the losses not yet reported in a ``lost_events`` event.

    Losses are the core's (LOSS_COUNTERS) and the counters the run's events declare
    in ``EventSpec.loss_counters`` (``declare_losses``).
    """

    def __init__(self, now_ns: int) -> None:
        self.counters: Counter[str] = Counter()
        self._reported: Counter[str] = Counter()
        self._plugin_losses: set[str] = set()
        self.reported_at_ns = now_ns

    def declare_losses(self, names: Iterable[str]) -> None:
        """Count these counters as losses too (an event's ``loss_counters``)."""
        self._plugin_losses.update(names)

    def is_loss(self, name: str) -> bool:
        """Whether counter ``name`` counts lost (or degraded) events."""
        return name.startswith(LOSS_COUNTERS) or name in self._plugin_losses

    def count(self, name: str, n: int = 1) -> None:
        self.counters[name] += n

    def set(self, name: str, value: int) -> None:
        """Take a counter kept elsewhere (the kernel's, a sink thread's) at its value now."""
        self.counters[name] = value

    def start_interval(self, now_ns: int) -> None:
        """Report the next losses as lost since ``now_ns`` (a capture file's first packet)."""
        self.reported_at_ns = now_ns

    def unreported_losses(self) -> dict[str, int]:
        """Loss counts added since the last call to ``mark_reported``."""
        return {
            name: value - self._reported[name]
            for name, value in self.counters.items()
            if self.is_loss(name) and value > self._reported[name]
        }

    def mark_reported(self, now_ns: int) -> None:
        self._reported = Counter({k: v for k, v in self.counters.items() if self.is_loss(k)})
        self.reported_at_ns = now_ns

    def snapshot(self) -> dict[str, int]:
        """The counters now; callable from any thread (the copy is one step under the GIL)."""
        return dict(self.counters)

    def totals(self) -> dict[str, int]:
        return dict(sorted(self.counters.items()))
