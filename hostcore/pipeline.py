"""Dispatch: packets to enabled event handlers, events packed once and fanned out to sinks."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import msgpack
import structlog

from hostcore import tracee
from hostcore.accounting import Accounting
from hostcore.config import DnsConfig
from hostcore.context import UNKNOWN, Contexts
from hostcore.decoder import DNS_PORT
from hostcore.dns.answers import DnsAnswers
from hostcore.dns.store import NameStore
from hostcore.events import (
    LOST_EVENTS_ID,
    LOST_EVENTS_NAME,
    Emit,
    EventContext,
    EventHandler,
    EventSpec,
)
from hostcore.filters import Test
from hostcore.packet import OpenSocket, Packet, PacketKind
from hostcore.plugins import PluginError
from hostcore.sinks.base import Sink, SinkClosed

SCHEMA_VERSION = 1
ERROR_LOG_INTERVAL_NS = 60 * 10**9

log = structlog.get_logger()


def _start(spec: EventSpec, context: EventContext) -> EventHandler:
    try:
        return spec.handler(context)
    except Exception as error:
        raise PluginError(
            f"event {spec.name!r} from plugin {spec.plugin!r} failed to start: "
            f"{type(error).__name__}: {error}"
        ) from error


def _kinds(needs: PacketKind) -> tuple[PacketKind, ...]:
    """The packet kinds (a flag, or a TCP kind with DNS_ANSWER) that ``needs`` wants."""
    every = [PacketKind.NONE, *PacketKind]
    combined = {kind | dns for kind in every for dns in (PacketKind.NONE, PacketKind.DNS_ANSWER)}
    return tuple(kind for kind in combined if kind & needs)


class Pipeline:
    """Owns the handlers of the enabled events and the open sinks of one run."""

    def __init__(
        self,
        events: Sequence[EventSpec],
        sinks: Mapping[str, Sink],
        host: str,
        accounting: Accounting,
        dns: DnsConfig | None = None,
        contexts: Contexts | None = None,
        scope: Test | None = None,
        data_filters: Mapping[str, Test] | None = None,
        event_options: Mapping[str, Mapping[str, str]] | None = None,
        output_format: str = "hostcore",
    ) -> None:
        self._sinks = dict(sinks)
        self._host = host
        self._accounting = accounting
        self._last_error_log: dict[str, int] = {}
        self._packer = msgpack.Packer()  # reused: packb would build a Packer per event
        self._unflushed = False
        self._contexts = contexts or Contexts(None, {})
        self._scope = scope
        self._data_filters = data_filters or {}
        self._tracee_types: dict[str, dict[str, str]] | None = None
        if output_format == "tracee":
            self._tracee_types = {s.name: {f.name: f.type for f in s.fields} for s in events}
        context = EventContext(count=accounting.count)
        self._dns: DnsAnswers | None = None
        if any(spec.uses_dns for spec in events):
            dns = dns or DnsConfig()
            store = NameStore(
                dns.store_size,
                dns.ttl_floor_s,
                dns.ttl_ceiling_s,
                by_cgroup=dns.scope == "cgroup",
                counters=accounting.counters,
            )
            self._dns = DnsAnswers(store, accounting.count)
            context.dns = store
        self._dns_kinds = _kinds(PacketKind.DNS_ANSWER)
        # Each event's wanted kinds as a tuple of members: a containment test on it
        # compares by identity, where IntFlag arithmetic per packet costs ~0.2 us.
        options = event_options or {}
        self._handlers: list[tuple[EventSpec, EventHandler, Emit, tuple[PacketKind, ...]]] = [
            (
                spec,
                _start(spec, replace(context, options=options.get(spec.name, {}))),
                self._emitter(spec),
                _kinds(spec.needs),
            )
            for spec in events
        ]

    def _emitter(self, spec: EventSpec) -> Emit:
        counter = f"events.{spec.name}"
        filtered = f"events_filtered.{spec.name}"
        contexts, scope = self._contexts, self._scope
        data_filter = self._data_filters.get(spec.name)

        def emit(timestamp_ns: int, data: Mapping[str, Any], source: Packet | None = None) -> None:
            context = contexts.of(source)
            if (scope and not scope(context)) or (data_filter and not data_filter(data)):
                self._accounting.count(filtered)
                return
            self._accounting.count(counter)
            self.publish(spec.name, spec.id, timestamp_ns, data, context)

        return emit

    def feed(self, packets: Sequence[Packet]) -> None:
        """Hand each enabled event the packets it needs, in order, then flush the sinks.

        Each DNS answer is stored before any later packet is handled, so a
        connection always finds the names of the answers that came before it.
        """
        self._accounting.count("packets", len(packets))
        start = 0
        if self._dns is not None:
            dns_kinds = self._dns_kinds
            for position, packet in enumerate(packets):
                # The port test first: it is cheaper than the kind test, and most packets fail it.
                if packet.src_port == DNS_PORT and packet.kind in dns_kinds:
                    self._dispatch(packets[start:position])
                    self._dns.add(packet)
                    start = position  # it may be a TCP kind too: handlers get it next
        self._dispatch(packets[start:] if start else packets)
        self.flush()

    def _dispatch(self, packets: Sequence[Packet]) -> None:
        for spec, handler, emit, kinds in self._handlers:
            wanted = [packet for packet in packets if packet.kind in kinds]
            if wanted:
                self._call(spec, len(wanted), handler.handle, wanted, emit)

    def _call(self, spec: EventSpec, lost: int, method: Callable[..., None], *args: Any) -> None:
        """Call a handler; if it raises, ``lost`` (packets, or 1 for a call without) is
        counted as the plugin's errors."""
        try:
            method(*args)
        except Exception:
            self._accounting.count(f"plugin_errors.{spec.name}", lost)
            self._log_error(f"event:{spec.name}", "event handler failed", event_name=spec.name)

    @property
    def wants_open_sockets(self) -> bool:
        """True if an enabled event's handler takes the sockets open at start-up."""
        return any(hasattr(handler, "preload") for _, handler, _, _ in self._handlers)

    def preload(self, sockets: Sequence[OpenSocket]) -> None:
        """Give the sockets open at start-up to every handler that takes them."""
        for spec, handler, _, _ in self._handlers:
            if hasattr(handler, "preload"):
                self._call(spec, len(sockets), handler.preload, sockets)

    def expire(self, now_ns: int) -> None:
        """Let handlers with timeouts emit what is due at ``now_ns``, then flush the sinks."""
        for spec, handler, emit, _ in self._handlers:
            if hasattr(handler, "expire"):
                self._call(spec, 1, handler.expire, now_ns, emit)
        self.flush()

    def publish(
        self,
        name: str,
        event_id: int,
        timestamp_ns: int,
        data: Mapping[str, Any],
        context: Mapping[str, Any] = UNKNOWN,
    ) -> None:
        """Build the event map (in the run's format), pack it once, give it to every sink."""
        event: dict[str, Any] = {
            "v": SCHEMA_VERSION,
            "name": name,
            "id": event_id,
            "timestamp": timestamp_ns,
            "host": self._host,
            "context": context,
            "data": data,
        }
        if self._tracee_types is not None:
            event = tracee.render(event, self._tracee_types.get(name, {}))
        packed = self._packer.pack(event)
        self._unflushed = True
        closed: list[tuple[str, SinkClosed]] = []
        for sink_name, sink in self._sinks.items():
            try:
                sink.write(packed, event)
            except SinkClosed as gone:
                closed.append((sink_name, gone))
            except Exception:
                self._accounting.count(f"sink_errors.{sink_name}")
                self._log_error(f"sink:{sink_name}", "sink write failed", sink=sink_name)
        for sink_name, cause in closed:
            self._drop_sink(sink_name, cause)

    def report_losses(self, now_ns: int) -> None:
        """Publish one ``lost_events`` event if anything was lost since the last one."""
        lost = self._accounting.unreported_losses()
        if not lost:
            return
        data = {
            "lost": lost,
            "total": sum(lost.values()),
            "interval_start": self._accounting.reported_at_ns,
            "interval_end": now_ns,
        }
        log.warning("lost_events", **data)
        self.publish(LOST_EVENTS_NAME, LOST_EVENTS_ID, now_ns, data)
        # After publishing: a sink that cannot take this very marker must not
        # trigger another one every second (its failures still show in the totals).
        self._accounting.mark_reported(now_ns)

    @property
    def has_sinks(self) -> bool:
        """False once every sink has closed itself: nothing would receive events."""
        return bool(self._sinks)

    def _drop_sink(self, name: str, closed: SinkClosed) -> None:
        sink = self._sinks.pop(name)
        log.warning("sink closed", sink=name, reason=str(closed), sinks_left=list(self._sinks))
        try:
            sink.close()
        except Exception:
            log.exception("sink close failed", sink=name)

    def flush(self) -> None:
        """Flush the sinks if anything was published since the last flush."""
        if not self._unflushed:
            return
        self._unflushed = False
        for sink_name, sink in list(self._sinks.items()):  # once a batch: a copy is cheap
            try:
                sink.flush()
            except SinkClosed as closed:
                self._drop_sink(sink_name, closed)
            except Exception:
                self._accounting.count(f"sink_flush_failures.{sink_name}")
                self._log_error(f"sink:{sink_name}", "sink flush failed", sink=sink_name)

    def close(self) -> None:
        """Flush and close every sink; one that fails does not stop the others."""
        self.flush()
        for sink_name, sink in self._sinks.items():
            try:
                sink.close()
            except Exception:
                log.exception("sink close failed", sink=sink_name)

    def _log_error(self, key: str, message: str, **fields: Any) -> None:
        """Log a failure with its traceback at most once per interval per source."""
        now = time.monotonic_ns()
        if now - self._last_error_log.get(key, -ERROR_LOG_INTERVAL_NS) >= ERROR_LOG_INTERVAL_NS:
            self._last_error_log[key] = now
            log.exception(message, **fields, next_report_in_s=ERROR_LOG_INTERVAL_NS // 10**9)
