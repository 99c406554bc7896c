"""Delivery: an emitted event through the user's filters to the sinks, and to the
signatures that consume it; its map is built once for both."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from typing import Any

from hostcore.events import Emit, EventSpec, event_map
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import Contexts
from hostcore.pipeline.fanout import Fanout
from hostcore.pipeline.filters import Test

Deliver = Callable[[int, Mapping[str, Any], Mapping[str, Any]], None]
"""``deliver(timestamp_ns, data, context)``: one event of a given name and id."""
Consumer = Callable[[Mapping[str, Any]], None]
"""Takes each event map of the name it subscribed to, in order (a signature)."""


class Delivery:
    """Routes events to the sinks (``fanout``) and to their consumers.

    Events not in ``published`` (None: all are) are produced only for their
    consumers. Published events pass the user's ``scope`` (on the context) and data
    filters (on the data, by event name) before the sinks get them; consumers get
    every event, and apply their own filters.
    """

    def __init__(
        self,
        host: str,
        accounting: Accounting,
        fanout: Fanout,
        scope: Test | None,
        data_filters: Mapping[str, Test],
        published: Collection[str] | None,
    ) -> None:
        self._host = host
        self._counters = accounting.counters  # counted in place: once per event
        self._fanout = fanout
        self._scope = scope
        self._data_filters = data_filters
        self._published = published
        self._consumers: dict[str, list[Consumer]] = {}
        self._routes: dict[tuple[str, int], Deliver] = {}

    def subscribe(self, name: str, consumer: Consumer) -> None:
        """Give ``consumer`` every event named ``name``, from now on."""
        self._consumers.setdefault(name, []).append(consumer)

    def emitter(self, spec: EventSpec, contexts: Contexts) -> Emit:
        """The ``emit`` of ``spec``'s handler: the context comes from the source packet."""
        return self._deliverer(spec.name, spec.id, contexts.of)

    def route(self, name: str, event_id: int) -> Deliver:
        """The way events named ``name`` go: filters, counters, sinks, then consumers
        (made once for each name and id: the kit asks for it per event)."""
        key = (name, event_id)
        if key not in self._routes:
            self._routes[key] = self._deliverer(name, event_id, _given)
        return self._routes[key]

    def _deliverer(
        self, name: str, event_id: int, context_of: Callable[[Any], Mapping[str, Any]]
    ) -> Callable[..., None]:
        """``deliver(timestamp_ns, data, source)``: the context is ``context_of(source)``.
        (One function per event name, all it needs in its closure: it runs per event.)"""
        host, counters, send = self._host, self._counters, self._fanout.send
        counter, filtered = f"events.{name}", f"events_filtered.{name}"
        scope, data_filter = self._scope, self._data_filters.get(name)
        published = self._published is None or name in self._published
        consumers = self._consumers.setdefault(name, [])  # signatures subscribe later

        def deliver(timestamp_ns: int, data: Mapping[str, Any], source: Any = None) -> None:
            context = context_of(source)
            event = None
            if published:
                if (scope and not scope(context)) or (data_filter and not data_filter(data)):
                    counters[filtered] += 1
                else:
                    counters[counter] += 1
                    event = event_map(name, event_id, timestamp_ns, host, context, data)
                    send(event)
            if consumers:
                if event is None:
                    event = event_map(name, event_id, timestamp_ns, host, context, data)
                for consume in consumers:
                    consume(event)

        return deliver


def _given(context: Mapping[str, Any]) -> Mapping[str, Any]:
    return context
