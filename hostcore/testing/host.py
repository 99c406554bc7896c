"""A host that runs the core's sink path, without a probe, on events a test makes up."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from hostcore.events import LOST_EVENTS_NAME
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import UNKNOWN
from hostcore.pipeline.fanout import DEFAULT_DRAIN_TIMEOUT_S
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions
from hostcore.plugins import Plugins
from hostcore.selections import check_outputs, open_sinks

# The kit's own event: no plugin provides it, so a sink is tested on its own.
KIT_EVENT_NAME = "kit_event"
KIT_EVENT_ID = 9999


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
        sizes = check_outputs(specs, sinks, {}, {})
        self.accounting = Accounting(time.time_ns())
        self.sinks = open_sinks(specs, sinks)  # the sink objects, to look at their state
        options = PipelineOptions(
            host=host_name,
            output_format=output_format,
            queue_sizes=sizes,
            drain_timeout_s=drain_timeout_s,
        )
        self.pipeline = Pipeline([], [], self.accounting, options)
        self.pipeline.start(self.sinks)
        self.closed = False

    def emit(
        self,
        data: Mapping[str, Any],
        name: str = KIT_EVENT_NAME,
        event_id: int = KIT_EVENT_ID,
        context: Mapping[str, Any] = UNKNOWN,
    ) -> None:
        """Publish one event to every sink, as a plugin's ``emit`` does, now."""
        self.pipeline.publish(name, event_id, time.time_ns(), data, context)

    def report_losses(self) -> None:
        """What a run does each second: a ``lost_events`` event if anything was lost."""
        self.pipeline.report_losses(time.time_ns())

    def close(self) -> dict[str, int]:
        """Drain and close the sinks, as a run ends; returns the run's counters."""
        if not self.closed:
            self.closed = True
            self.pipeline.close()
        return self.accounting.totals()


def synthetic_events(count: int) -> Iterator[dict[str, Any]]:
    """Data for ``count`` events of the kit's own: a text, a number and a list of texts
    each, and ``seq`` (0, 1, ...), so that a test can find gaps and repeats."""
    for n in range(count):
        yield {
            "seq": n,
            "text": f"event {n}",
            "port": 10000 + n % 50000,
            "names": ["example.test"],
        }


def reported_losses(events: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """What the ``lost_events`` events among ``events`` reported, summed by counter."""
    lost: Counter[str] = Counter()
    for event in events:
        if event["name"] == LOST_EVENTS_NAME:
            lost.update(event["data"]["lost"])
    return lost
