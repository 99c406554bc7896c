"""Dispatch: packets to enabled event handlers, events packed once and fanned out to sinks."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import msgpack
import structlog

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
from hostcore.packet import Packet, PacketKind
from hostcore.plugins import PluginError
from hostcore.sinks.base import Sink, SinkClosed
from hostcore.sinks.queue import DEFAULT_QUEUE_SIZE, QueuedSink

SCHEMA_VERSION = 1
ERROR_LOG_INTERVAL_NS = 60 * 10**9
DEFAULT_DRAIN_TIMEOUT_S = 5.0

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
    """Owns the handlers of the enabled events and the open sinks of one run.

    Each sink gets its own bounded queue and thread (hostcore/sinks/queue.py):
    ``queue_sizes`` gives a size by sink name, and ``close`` waits at most
    ``drain_timeout_s`` for all of them to write what they hold.
    """

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
        queue_sizes: Mapping[str, int] | None = None,
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
    ) -> None:
        sizes = queue_sizes or {}
        self._sinks = {
            name: QueuedSink(name, sink, sizes.get(name, DEFAULT_QUEUE_SIZE), self._marker)
            for name, sink in sinks.items()
        }
        self._every_sink = list(self._sinks.values())  # closed ones too: their counters stay
        self._drain_timeout_s = drain_timeout_s
        self._host = host
        self._accounting = accounting
        self._last_error_log: dict[str, int] = {}
        self._packer = msgpack.Packer()  # reused: packb would build a Packer per event
        self._unflushed = False
        self._contexts = contexts or Contexts(None, {})
        self._scope = scope
        self._data_filters = data_filters or {}
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
        self._handlers: list[tuple[EventSpec, EventHandler, Emit, tuple[PacketKind, ...]]] = [
            (spec, _start(spec, context), self._emitter(spec), _kinds(spec.needs))
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
            if not wanted:
                continue
            try:
                handler.handle(wanted, emit)
            except Exception:
                self._accounting.count(f"plugin_errors.{spec.name}", len(wanted))
                self._log_error(f"event:{spec.name}", "event handler failed", event_name=spec.name)

    def publish(
        self,
        name: str,
        event_id: int,
        timestamp_ns: int,
        data: Mapping[str, Any],
        context: Mapping[str, Any] = UNKNOWN,
    ) -> None:
        """Build the event map, pack it once, and queue it for every sink."""
        packed, event = self._packed(name, event_id, timestamp_ns, data, context)
        self._unflushed = True
        closed: list[tuple[str, SinkClosed]] = []
        for sink_name, queued in self._sinks.items():
            try:
                queued.put(packed, event)
            except SinkClosed as gone:
                closed.append((sink_name, gone))
        for sink_name, cause in closed:
            self._drop_sink(sink_name, cause)

    def _packed(
        self,
        name: str,
        event_id: int,
        timestamp_ns: int,
        data: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> tuple[bytes, dict[str, Any]]:
        event = {
            "v": SCHEMA_VERSION,
            "name": name,
            "id": event_id,
            "timestamp": timestamp_ns,
            "host": self._host,
            "context": context,
            "data": data,
        }
        return self._packer.pack(event), event

    def _marker(self, data: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
        return self._packed(LOST_EVENTS_NAME, LOST_EVENTS_ID, data["interval_end"], data, UNKNOWN)

    def report_losses(self, now_ns: int) -> None:
        """Tell every sink, through a ``lost_events`` event, what was lost since the last one.

        A sink whose queue is full gets it, merged with any later one, once it has room.
        """
        for sink_name, queued in list(self._sinks.items()):
            if queued.closed_reason:
                self._drop_sink(sink_name, SinkClosed(queued.closed_reason))
        self._count_sink_losses()
        lost = self._accounting.unreported_losses()
        if not lost:
            return
        start_ns = self._accounting.reported_at_ns
        log.warning(
            "lost_events",
            lost=lost,
            total=sum(lost.values()),
            interval_start=start_ns,
            interval_end=now_ns,
        )
        for queued in self._sinks.values():
            queued.tell(lost, start_ns, now_ns)
        self._accounting.mark_reported(now_ns)

    def _count_sink_losses(self) -> None:
        # The sinks' threads count in their own ints; the run's counters take their values.
        for queued in self._every_sink:
            for name, value in queued.counters().items():
                self._accounting.counters[name] = value

    @property
    def has_sinks(self) -> bool:
        """False once every sink has closed itself: nothing would receive events."""
        return any(not queued.closed_reason for queued in self._sinks.values())

    def _drop_sink(self, name: str, closed: SinkClosed) -> None:
        queued = self._sinks.pop(name)
        log.warning("sink closed", sink=name, reason=str(closed), sinks_left=list(self._sinks))
        queued.close(time.monotonic() + self._drain_timeout_s)

    def flush(self) -> None:
        """Wake the sinks' threads if anything was queued since the last call (once a batch)."""
        if not self._unflushed:
            return
        self._unflushed = False
        for queued in self._sinks.values():
            queued.wake()

    def close(self) -> None:
        """Let every sink write what it holds, within the drain timeout, and close it.

        Losses counted while the sinks wrote are reported to them before they close;
        what a sink still held at the deadline is counted as ``sink_undelivered.<sink>``.
        """
        deadline = time.monotonic() + self._drain_timeout_s
        self.flush()
        for queued in self._sinks.values():
            queued.wait_idle(deadline)
        self.report_losses(time.time_ns())
        for queued in self._sinks.values():
            queued.stop()
        for queued in self._sinks.values():
            queued.join(deadline)
        self._count_sink_losses()

    def _log_error(self, key: str, message: str, **fields: Any) -> None:
        """Log a failure with its traceback at most once per interval per source."""
        now = time.monotonic_ns()
        if now - self._last_error_log.get(key, -ERROR_LOG_INTERVAL_NS) >= ERROR_LOG_INTERVAL_NS:
            self._last_error_log[key] = now
            log.exception(message, **fields, next_report_in_s=ERROR_LOG_INTERVAL_NS // 10**9)
