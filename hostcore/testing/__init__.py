"""The sink author's kit: a host without a probe, synthetic events, and a collector.

Installed with hostcore, it is a pytest plugin (entry point ``pytest11``): its fixtures
are in :mod:`hostcore.testing.fixtures`.
"""

from __future__ import annotations

from hostcore.testing.collector import Collector, CollectorTls
from hostcore.testing.host import (
    KIT_EVENT_ID,
    KIT_EVENT_NAME,
    SinkHost,
    reported_losses,
    synthetic_events,
)

__all__ = [
    "KIT_EVENT_ID",
    "KIT_EVENT_NAME",
    "Collector",
    "CollectorTls",
    "SinkHost",
    "reported_losses",
    "synthetic_events",
]
