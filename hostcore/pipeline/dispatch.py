"""Dispatch: each batch of packets to the enabled events' handlers, through pluggy hooks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import pluggy

from hostcore.decoder import DNS_PORT
from hostcore.dns.answers import DnsAnswers
from hostcore.dns.in_order import NamesInOrder
from hostcore.events import EventSpec
from hostcore.hookspecs import EventHandlerHooks
from hostcore.log import FailureLog
from hostcore.packet import OpenSocket, Packet, PacketKind, kinds_wanted
from hostcore.pipeline.accounting import Accounting
from hostcore.plugins import PluginError, caller_for, register_checked


class _Route(NamedTuple):
    """One handler's way in for one hook: its event, and the hook caller for it alone."""

    spec: EventSpec
    call: pluggy.HookCaller
    kinds: tuple[PacketKind, ...]


class Dispatch:
    """The handlers of one run, registered with a plugin manager of the run's own.

    Each handler that implements ``hostcore_packets`` is called once per batch with
    the packets of the kinds its event needs, through a hook caller of its own: so a
    handler that raises is the one counted (``plugin_errors.<event>``, the packets it
    lost) and logged, and the others still get the batch. ``dns`` (if any enabled
    event uses DNS names) takes each DNS answer, in stream order, and ``names`` (what
    handlers read) keeps each packet's lookups as they were before later answers.
    """

    def __init__(
        self,
        handlers: Sequence[tuple[EventSpec, object]],
        dns: tuple[DnsAnswers, NamesInOrder] | None,
        accounting: Accounting,
        failures: FailureLog,
    ) -> None:
        self._manager = pluggy.PluginManager("hostcore")
        self._manager.add_hookspecs(EventHandlerHooks)
        for spec, handler in handlers:
            self._register(spec, handler)
        self._dns = dns
        self._dns_kinds = kinds_wanted(PacketKind.DNS_ANSWER)
        named = PacketKind.NONE
        for spec, _ in handlers:
            if spec.uses_dns:
                named |= spec.needs
        self._named_kinds = kinds_wanted(named)
        self._count = accounting.count
        self._failures = failures
        self._packets = self._routes("hostcore_packets", handlers)
        self._expiring = self._routes("hostcore_expire", handlers)
        self._preloading = self._routes("hostcore_preload", handlers)

    def _register(self, spec: EventSpec, handler: object) -> None:
        what = f"event {spec.name!r} from plugin {spec.plugin!r}"
        try:
            register_checked(self._manager, handler, spec.name)
        except (pluggy.PluginValidationError, ValueError) as error:
            raise PluginError(f"{what}: its handler has invalid hooks: {error}") from error
        if spec.needs and not self._implements("hostcore_packets", handler):
            raise PluginError(
                f"{what} needs packets ({spec.needs!r}) but its handler implements no "
                "hostcore_packets hook (mark the method with @hostcore.hookimpl)"
            )

    def _implements(self, hook_name: str, handler: object) -> bool:
        hook = getattr(self._manager.hook, hook_name)
        return any(impl.plugin is handler for impl in hook.get_hookimpls())

    def _routes(self, hook_name: str, handlers: Sequence[tuple[EventSpec, object]]) -> list[_Route]:
        return [
            _Route(spec, caller_for(self._manager, hook_name, handler), kinds_wanted(spec.needs))
            for spec, handler in handlers
            if self._implements(hook_name, handler)
        ]

    @property
    def wants_open_sockets(self) -> bool:
        """True if an enabled event's handler takes the connections open at start-up."""
        return bool(self._preloading)

    def feed(self, packets: Sequence[Packet]) -> None:
        """Hand each handler the packets it needs, in order, in one call.

        A connection always finds the names of the answers that came before it,
        and never those of answers that came after it.
        """
        if self._dns is not None:
            answers, names = self._dns
            dns_kinds = self._dns_kinds
            # The port test first: it is cheaper than the kind test, and most packets fail it.
            positions = [
                position
                for position, packet in enumerate(packets)
                if packet.src_port == DNS_PORT and packet.kind in dns_kinds
            ]
            if positions:
                self._store_answers(packets[: positions[-1] + 1], answers, names)
            self._dispatch(packets)
            names.forget()
        else:
            self._dispatch(packets)

    def _store_answers(
        self, packets: Sequence[Packet], answers: DnsAnswers, names: NamesInOrder
    ) -> None:
        """Store the answers among ``packets`` (a batch, up to its last answer) in order,
        looking up each other packet's names as they are when it comes."""
        dns_kinds, named_kinds = self._dns_kinds, self._named_kinds
        for packet in packets:
            if packet.src_port == DNS_PORT and packet.kind in dns_kinds:
                answers.add(packet)  # it may be a TCP kind too: looked up after its answer
            if packet.kind in named_kinds:
                names.remember(packet)

    def _dispatch(self, packets: Sequence[Packet]) -> None:
        for route in self._packets:
            kinds = route.kinds
            wanted = [packet for packet in packets if packet.kind in kinds]
            if wanted:
                self._call(route, len(wanted), packets=wanted)

    def expire(self, now_ns: int) -> None:
        """Let handlers with timeouts emit what is due at ``now_ns``."""
        for route in self._expiring:
            self._call(route, 1, now_ns=now_ns)

    def preload(self, sockets: Sequence[OpenSocket]) -> None:
        """Give the connections open at start-up to every handler that takes them."""
        for route in self._preloading:
            self._call(route, len(sockets), sockets=sockets)

    def _call(self, route: _Route, lost: int, **arguments: Any) -> None:
        """Call one handler's hook; if it raises, ``lost`` (packets, sockets, or 1 for a
        timeout) is counted as the event's plugin errors."""
        try:
            route.call(**arguments)
        except Exception:
            name = route.spec.name
            self._count(f"plugin_errors.{name}", lost)
            self._failures.exception(f"event:{name}", "event handler failed", event_name=name)
