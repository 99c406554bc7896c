"""A host that runs the core's sink path, without a probe, on events a test makes up."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hostcore.events import LOST_EVENTS_NAME
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import UNKNOWN
from hostcore.pipeline.dispatch import DEFAULT_DRAIN_TIMEOUT_S, Pipeline
from hostcore.plugins import Plugins
from hostcore.run import open_sinks, queue_sizes

KIT_EVENT_NAME = "net_flow_tcp_begin"
KIT_EVENT_ID = 2012


class SinkHost:
    """The sinks named in ``sinks`` (name -> options, as ``--sink`` gives them), opened
    through the installed plugins as ``hostcore run`` opens them, each behind its queue."""

    def __init__(
        self,
        sinks: Mapping[str, Mapping[str, str]],
        host_name: str = "kit-host",
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
        output_format: str = "hostcore",
    ) -> None:
        specs = Plugins(frozenset(), frozenset(), strict=True).sinks()
        sizes = queue_sizes(sinks)
        self.accounting = Accounting(time.time_ns())
        self.sinks = open_sinks(specs, sinks)  # the sink objects, to look at their state
        self.pipeline = Pipeline(
            [],
            self.sinks,
            host_name,
            self.accounting,
            output_format=output_format,
            queue_sizes=sizes,
            drain_timeout_s=drain_timeout_s,
        )
        self.closed = False

    def emit(
        self,
        data: Mapping[str, Any],
        name: str = KIT_EVENT_NAME,
        event_id: int = KIT_EVENT_ID,
        context: Mapping[str, Any] = UNKNOWN,
    ) -> None:
        """Publish one event to every sink, as a plugin's ``emit`` does, now."""
        self.emit_batch([data], name, event_id, context)

    def emit_batch(
        self,
        batch: Iterable[Mapping[str, Any]],
        name: str = KIT_EVENT_NAME,
        event_id: int = KIT_EVENT_ID,
        context: Mapping[str, Any] = UNKNOWN,
    ) -> None:
        """Publish events to every sink, waking the sinks' threads once at the end, as a run
        does with what one drain of the ring buffer brought."""
        for data in batch:
            self.accounting.count(f"events.{name}")
            self.pipeline.publish(name, event_id, time.time_ns(), data, context)
        self.pipeline.flush()

    def report_losses(self) -> None:
        """What a run does each second: a ``lost_events`` event if anything was lost."""
        self.pipeline.report_losses(time.time_ns())

    def close(self) -> dict[str, int]:
        """Drain and close the sinks, as a run ends; returns the run's counters."""
        if not self.closed:
            self.closed = True
            self.pipeline.close()
        return self.accounting.totals()


def synthetic_flows(count: int, first_port: int = 10000) -> Iterator[dict[str, Any]]:
    """``net_flow_tcp_begin`` data for ``count`` connections, each with its own client port."""
    for n in range(count):
        yield {
            "conn_direction": "outgoing",
            "src": "192.0.2.1",
            "dst": "198.51.100.7",
            "src_port": first_port + n % 50000,
            "dst_port": 443,
            "src_dns": [],
            "dst_dns": ["example.test"],
            "seq": n,  # which synthetic event this is, so a test can find gaps and repeats
        }


def reported_losses(events: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """What the ``lost_events`` events among ``events`` reported, summed by counter."""
    lost: Counter[str] = Counter()
    for event in events:
        if event["name"] == LOST_EVENTS_NAME:
            lost.update(event["data"]["lost"])
    return lost
