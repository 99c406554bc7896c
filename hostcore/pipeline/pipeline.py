"""The pipeline of one run, its stages assembled: dispatch -> handlers -> delivery -> fan-out."""

from __future__ import annotations

import functools
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostcore.config import DnsConfig
from hostcore.dns.answers import DnsAnswers
from hostcore.dns.in_order import NamesInOrder
from hostcore.dns.store import NameStore
from hostcore.events import DnsNames, EventContext, EventSpec, NoDnsNames
from hostcore.log import FailureLog
from hostcore.packet import OpenSocket, Packet
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import UNKNOWN, Contexts
from hostcore.pipeline.delivery import Delivery
from hostcore.pipeline.dispatch import Dispatch
from hostcore.pipeline.fanout import DEFAULT_DRAIN_TIMEOUT_S, Fanout
from hostcore.pipeline.filters import Test
from hostcore.pipeline.render import Renderer
from hostcore.plugins import started
from hostcore.signatures.loading import Enabled
from hostcore.signatures.runtime import start_signatures
from hostcore.sinks.base import Sink


@dataclass(frozen=True)
class PipelineOptions:
    """How a run's pipeline treats its events: from the config, the plan and the command."""

    host: str
    dns: DnsConfig = field(default_factory=DnsConfig)
    scope: Test | None = None  # on an event's context: the sinks get only what passes
    data_filters: Mapping[str, Test] = field(default_factory=dict)  # by event name
    published: Collection[str] | None = None  # events for the sinks (None: every one)
    event_options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    output_format: str = "hostcore"
    queue_sizes: Mapping[str, int] = field(default_factory=dict)  # by sink name
    drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S
    sinks_wait: bool = False  # a full sink queue holds up the source (a capture file)


class Pipeline:
    """The enabled events' handlers, the signatures and the open sinks of one run.

    Built first (handlers and signatures started, their options checked), then given
    its sinks with ``start``: nothing is delivered before.
    """

    def __init__(
        self,
        events: Sequence[EventSpec],
        signatures: Sequence[Enabled],
        accounting: Accounting,
        options: PipelineOptions,
        contexts: Contexts | None = None,
    ) -> None:
        self._options = options
        self._accounting = accounting
        accounting.declare_losses(name for spec in events for name in spec.loss_counters)
        failures = FailureLog()
        render = Renderer(options.output_format, [*events, *(e.spec for e in signatures)])
        self._fanout = Fanout(render, options.host, accounting, failures, options.drain_timeout_s)
        self._delivery = Delivery(
            options.host,
            accounting,
            self._fanout,
            options.scope,
            options.data_filters,
            options.published,
        )
        dns = _dns_store(events, options.dns, accounting)
        names: DnsNames = NoDnsNames() if dns is None else dns[1]
        contexts = contexts or Contexts()
        handlers = [
            (
                spec,
                started(
                    "event",
                    spec.name,
                    spec.plugin,
                    functools.partial(
                        spec.handler,
                        EventContext(
                            accounting.count,
                            self._delivery.emitter(spec, contexts),
                            names,
                            options.event_options.get(spec.name, {}),
                        ),
                    ),
                ),
            )
            for spec in events
        ]
        self._dispatch = Dispatch(handlers, dns, accounting, failures)
        start_signatures(signatures, self._delivery, accounting.count, failures)

    def start(self, sinks: Mapping[str, Sink]) -> None:
        """Put each sink behind its queue and thread; events flow from here on."""
        self._fanout.start(sinks, self._options.queue_sizes, self._options.sinks_wait)

    def feed(self, packets: Sequence[Packet]) -> None:
        """Hand a batch of packets to the handlers, then wake the sinks."""
        self._accounting.count("packets", len(packets))
        self._dispatch.feed(packets)
        self._fanout.flush()

    def expire(self, now_ns: int) -> None:
        """Let handlers with timeouts emit what is due at ``now_ns``, then wake the sinks."""
        self._dispatch.expire(now_ns)
        self._fanout.flush()

    @property
    def wants_open_sockets(self) -> bool:
        return self._dispatch.wants_open_sockets

    def preload(self, sockets: Sequence[OpenSocket]) -> None:
        self._dispatch.preload(sockets)

    def publish(
        self,
        name: str,
        event_id: int,
        timestamp_ns: int,
        data: Mapping[str, Any],
        context: Mapping[str, Any] = UNKNOWN,
    ) -> None:
        """Deliver one event that no handler made (the sink author's kit)."""
        self._delivery.route(name, event_id)(timestamp_ns, data, context)
        self._fanout.flush()

    def report_losses(self, now_ns: int) -> None:
        self._fanout.report_losses(now_ns)

    @property
    def has_sinks(self) -> bool:
        return self._fanout.has_sinks

    def drain(self) -> float:
        return self._fanout.drain()

    def close(self) -> None:
        self._fanout.close()


def _dns_store(
    events: Sequence[EventSpec], config: DnsConfig, accounting: Accounting
) -> tuple[DnsAnswers, NamesInOrder] | None:
    """The run's DNS store, if an enabled event uses DNS names: what feeds it, what reads it."""
    if not any(spec.uses_dns for spec in events):
        return None
    store = NameStore(
        config.store_size,
        config.ttl_floor_s,
        config.ttl_ceiling_s,
        by_cgroup=config.scope == "cgroup",
        counters=accounting.counters,
    )
    return DnsAnswers(store, accounting.count), NamesInOrder(store)
