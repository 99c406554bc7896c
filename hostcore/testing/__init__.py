"""The sink author's kit: a host without a probe, synthetic events, and a collector.

Installed with hostcore, it is a pytest plugin (entry point ``pytest11``): its fixtures
are in :mod:`hostcore.testing.fixtures`.
"""

from __future__ import annotations

from hostcore.testing.collector import Collector, CollectorTls
from hostcore.testing.host import SinkHost, reported_losses, synthetic_flows

__all__ = ["Collector", "CollectorTls", "SinkHost", "reported_losses", "synthetic_flows"]
