"""Dispatch: packets to enabled event handlers, events packed once and fanned out to sinks."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import replace
from typing import Any

import msgpack
import structlog

from hostcore.config import DnsConfig
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
from hostcore.log import ERROR_LOG_INTERVAL_NS
from hostcore.packet import OpenSocket, Packet, PacketKind, kinds_wanted
from hostcore.pipeline import tracee
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.context import UNKNOWN, Contexts
from hostcore.pipeline.filters import Test
from hostcore.plugins import PluginError
from hostcore.signatures import runtime as findings
from hostcore.signatures.loading import Enabled
from hostcore.signatures.spec import SignatureSpec
from hostcore.sinks.base import Sink, SinkClosed
from hostcore.sinks.queue import DEFAULT_QUEUE_SIZE, QueuedSink

SCHEMA_VERSION = 1
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


class Pipeline:
    """Owns the handlers of the enabled events and signatures, and the open sinks of one run.

    Events not in ``published`` (None: all are) are produced only for the
    signatures that consume them. A finding goes through the same delivery as
    any event: scope and data filters, every sink, then its own consumers.

    Each sink gets its own bounded queue and thread (hostcore/sinks/queue.py):
    ``queue_sizes`` gives a size by sink name, and ``close`` waits at most
    ``drain_timeout_s`` for all of them to write what they hold. With
    ``sinks_wait``, a full queue holds up dispatch instead of dropping.
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
        signatures: Sequence[Enabled] = (),
        published: Collection[str] | None = None,
        event_options: Mapping[str, Mapping[str, str]] | None = None,
        output_format: str = "hostcore",
        queue_sizes: Mapping[str, int] | None = None,
        drain_timeout_s: float = DEFAULT_DRAIN_TIMEOUT_S,
        sinks_wait: bool = False,
    ) -> None:
        self._host = host
        self._accounting = accounting
        self._last_error_log: dict[str, int] = {}
        self._packer = msgpack.Packer()  # reused: packb would build a Packer per event
        self._unflushed = False
        self._contexts = contexts or Contexts(None, {})
        self._scope = scope
        self._data_filters = data_filters or {}
        self._published = published
        # Sinks get Tracee's map in the "tracee" format; consumers always get hostcore's.
        self._tracee_types: dict[str, dict[str, str]] | None = None
        if output_format == "tracee":
            specs: list[EventSpec | SignatureSpec] = [*events, *(e.spec for e in signatures)]
            self._tracee_types = {s.name: {f.name: f.type for f in s.fields} for s in specs}
        # Filled below, once every signature has started; deliveries hold these lists.
        self._consumers: dict[str, list[findings.Consumer]] = {
            name: [] for enabled in signatures for name in enabled.consumes
        }
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
        self._dns_kinds = kinds_wanted(PacketKind.DNS_ANSWER)
        options = event_options or {}
        self._handlers: list[tuple[EventSpec, EventHandler, Emit, tuple[PacketKind, ...]]] = [
            (
                spec,
                _start(spec, replace(context, options=options.get(spec.name, {}))),
                self._emitter(spec),
                kinds_wanted(spec.needs),
            )
            for spec in events
        ]
        for enabled in signatures:
            spec = enabled.spec
            signature = findings.start(enabled, accounting.count)
            report = findings.reporter(spec, self._deliverer(spec.name, spec.id))
            for name, test in enabled.consumes.items():
                consume = findings.consumer(spec, signature, test, report, self._signature_failed)
                self._consumers[name].append(consume)
        # Last: a handler or signature that fails to start leaves no sink thread behind.
        sizes = queue_sizes or {}
        self._sinks = {
            name: QueuedSink(
                name, sink, sizes.get(name, DEFAULT_QUEUE_SIZE), self._marker, sinks_wait
            )
            for name, sink in sinks.items()
        }
        self._every_sink = list(self._sinks.values())  # closed ones too: their counters stay
        self._stopped: list[QueuedSink] = []  # sinks that closed themselves, still closing
        self._drain_timeout_s = drain_timeout_s

    def _emitter(self, spec: EventSpec) -> Emit:
        deliver, contexts = self._deliverer(spec.name, spec.id), self._contexts

        def emit(timestamp_ns: int, data: Mapping[str, Any], source: Packet | None = None) -> None:
            deliver(timestamp_ns, data, contexts.of(source))

        return emit

    def _deliverer(self, name: str, event_id: int) -> findings.Deliver:
        """Publish an event that passes the filters, then hand it to its consumers."""
        counter, filtered = f"events.{name}", f"events_filtered.{name}"
        scope, data_filter = self._scope, self._data_filters.get(name)
        published = self._published is None or name in self._published
        consumers = self._consumers.get(name)  # filled once the signatures have started

        def publish(timestamp_ns: int, data: Mapping[str, Any], context: Mapping[str, Any]) -> None:
            if (scope and not scope(context)) or (data_filter and not data_filter(data)):
                self._accounting.count(filtered)
                return
            self._accounting.count(counter)
            self._publish(self._event(name, event_id, timestamp_ns, data, context))

        if consumers is None:  # the common case, per event: nothing built before the filters pass
            return publish

        def deliver(timestamp_ns: int, data: Mapping[str, Any], context: Mapping[str, Any]) -> None:
            if published:
                publish(timestamp_ns, data, context)
            event = self._event(name, event_id, timestamp_ns, data, context)
            for consume in consumers:
                consume(event)

        return deliver

    def _signature_failed(self, spec: SignatureSpec) -> None:
        self._accounting.count(f"signature_errors.{spec.name}")
        self._log_error(f"signature:{spec.name}", "signature failed", signature=spec.name)

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
        """Build the event map, pack it once, and give it to every sink."""
        self._publish(self._event(name, event_id, timestamp_ns, data, context))

    def _event(
        self,
        name: str,
        event_id: int,
        timestamp_ns: int,
        data: Mapping[str, Any],
        context: Mapping[str, Any],
    ) -> dict[str, Any]:
        return {
            "v": SCHEMA_VERSION,
            "name": name,
            "id": event_id,
            "timestamp": timestamp_ns,
            "host": self._host,
            "context": context,
            "data": data,
        }

    def _rendered(self, event: Mapping[str, Any]) -> tuple[bytes, Mapping[str, Any]]:
        """The event as the sinks receive it (Tracee's format, if chosen), packed once."""
        if self._tracee_types is not None:
            event = tracee.render(event, self._tracee_types)
        return self._packer.pack(event), event

    def _publish(self, event: Mapping[str, Any]) -> None:
        packed, event = self._rendered(event)
        self._unflushed = True
        closed: list[tuple[str, SinkClosed]] = []
        for sink_name, queued in self._sinks.items():
            try:
                queued.put(packed, event)
            except SinkClosed as gone:
                closed.append((sink_name, gone))
        for sink_name, cause in closed:
            self._drop_sink(sink_name, cause)

    def _marker(self, data: Mapping[str, Any]) -> tuple[bytes, Mapping[str, Any]]:
        lost = self._event(LOST_EVENTS_NAME, LOST_EVENTS_ID, data["interval_end"], data, UNKNOWN)
        return self._rendered(lost)

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
        queued.stop()  # its thread closes it; waited for in close(), never on the dispatch path
        self._stopped.append(queued)

    def flush(self) -> None:
        """Wake the sinks' threads if anything was queued since the last call (once a batch)."""
        if not self._unflushed:
            return
        self._unflushed = False
        for queued in self._sinks.values():
            queued.wake()

    def drain(self) -> float:
        """Wake the sinks and wait, within the drain timeout, until each has written and
        flushed what it was given; returns the deadline (``time.monotonic()``)."""
        deadline = time.monotonic() + self._drain_timeout_s
        self.flush()
        for queued in self._sinks.values():
            queued.wait_idle(deadline)
        return deadline

    def close(self) -> None:
        """Let every sink write what it holds, within the drain timeout, and close it.

        Losses counted while the sinks wrote are reported to them before they close;
        what a sink still held at the deadline is counted as ``sink_undelivered.<sink>``.
        """
        deadline = self.drain()
        self.report_losses(time.time_ns())
        for queued in self._sinks.values():
            queued.stop()
        for queued in [*self._sinks.values(), *self._stopped]:
            queued.join(deadline)
        self._count_sink_losses()

    def _log_error(self, key: str, message: str, **fields: Any) -> None:
        """Log a failure with its traceback at most once per interval per source."""
        now = time.monotonic_ns()
        if now - self._last_error_log.get(key, -ERROR_LOG_INTERVAL_NS) >= ERROR_LOG_INTERVAL_NS:
            self._last_error_log[key] = now
            log.exception(message, **fields, next_report_in_s=ERROR_LOG_INTERVAL_NS // 10**9)
