"""net_flow_tcp_end: one event per TCP connection end, seen at its first FIN or RST.

For a socket the probe saw established, the FIN or RST arrives when the socket
closes, with the socket's totals then (``Packet.totals``); for others, at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

from hostcore import (
    TCP_ACK,
    TCP_RST,
    BoundedMap,
    Direction,
    EventContext,
    EventSpec,
    Field,
    OpenSocket,
    Packet,
    PacketKind,
    TcpTotals,
    hookimpl,
)
from hostcore_net_flow.begin import FLOW_FIELDS, syn_ack_fields
from hostcore_net_flow.connections import SocketKey, flow_fields, socket_key

# Open connections remembered (about 600 bytes each, so about 40 MB); beyond
# that the oldest are dropped and counted: their end comes flagged "missed".
OPEN_CONNECTIONS = 65536
# Ended connections are remembered so that the other side's FIN, the last ACK's
# RST or a retransmission gives no second end: for TIME_WAIT (60 s) and more.
# Live, the kernel passes up only a socket's first FIN or RST anyway; a capture
# file (hostcore replay) holds them all.
ENDED_CONNECTIONS = 65536
ENDED_WINDOW_NS = 120 * 10**9

CLOSED_BY = {Direction.EGRESS: "local", Direction.INGRESS: "remote"}
# What the end adds to the flow fields: name, type.
END_FIELDS = (
    ("closed_by", "string"),
    ("closed_with", "string"),
    ("begin", "string"),
    ("duration_ns", "uint64"),
)
# The socket's counters at its close: TcpTotals' fields, with these types; null where not known.
TOTALS_FIELDS = tuple(
    zip(
        TcpTotals._fields,
        ("uint64", "uint64", "uint32", "uint32", "uint32", "uint32", "uint32"),
        strict=True,
    )
)
NO_TOTALS = dict.fromkeys(TcpTotals._fields)
_UNKNOWN_TOTALS = (None,) * len(TcpTotals._fields)


class _Open(NamedTuple):
    fields: dict[str, Any]  # the flow fields, names as DNS gave them at the begin
    begin: str  # "seen" or "pre_existing"
    begin_ns: int | None  # the SYN+ACK's time, None if not seen
    isn: int | None  # the SYN+ACK's acknowledgement number, None if not seen
    syn_ack: Packet | None  # the SYN+ACK, whose socket names the begin's process


def _open(fields: tuple[Any, ...]) -> _Open:
    """``_Open(*fields)`` without NamedTuple's generated ``__new__``: made per connection."""
    return tuple.__new__(_Open, fields)


def answers_a_syn(packet: Packet) -> bool:
    """A RST answering a segment without ACK, that is a SYN (a refused connection).

    The kernel then sends sequence number 0 with an ACK (RFC 793 reset
    generation); a RST inside a connection carries its next sequence number.
    """
    return packet.tcp_flags & (TCP_RST | TCP_ACK) == TCP_RST | TCP_ACK and packet.seq == 0


class TcpEnd:
    """The first FIN or RST through a local socket ends its connection.

    A FIN or RST leaving (egress) means this side closed; arriving, the peer did.
    The connection's fields come from its SYN+ACK (the same as its begin event),
    from the sockets open at start-up, or, when neither was seen, from the packet:
    then ``src`` is the local end and the direction is unknown.
    """

    def __init__(self, context: EventContext) -> None:
        self._count = context.count
        self._emit = context.emit
        self._names = context.dns.names
        self._open: BoundedMap[SocketKey, _Open] = BoundedMap(OPEN_CONNECTIONS)
        # key -> ISN
        self._ended: BoundedMap[SocketKey, int | None] = BoundedMap(ENDED_CONNECTIONS)

    @hookimpl
    def hostcore_preload(self, sockets: Sequence[OpenSocket]) -> None:
        for sock in sockets:
            local = (sock.local, sock.local_port)
            remote = (sock.remote, sock.remote_port)
            initiator, responder = (remote, local) if sock.incoming else (local, remote)
            direction = "incoming" if sock.incoming else "outgoing"
            fields = flow_fields(direction, initiator, responder, _no_names, 0, 0)
            key = (sock.local, sock.local_port, sock.remote, sock.remote_port)
            self._open.put(key, _Open(fields, "pre_existing", None, None, None), 0)

    @hookimpl
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        evictions = self._open.evictions + self._ended.evictions
        ended, syn_ack = self._ended, PacketKind.TCP_SYN_ACK
        for packet in packets:
            key = socket_key(packet)
            if packet.kind is syn_ack:
                self._begin(key, packet)
            elif key not in ended and not answers_a_syn(packet):
                self._end(key, packet)
        self._ended.expire(packets[-1].timestamp_ns - ENDED_WINDOW_NS)
        evictions = self._open.evictions + self._ended.evictions - evictions
        if evictions:
            self._count("net_flow_tcp_end.flow_table_evictions", evictions)

    def _begin(self, key: SocketKey, packet: Packet) -> None:
        # The client's ISN (ack - 1) tells a retransmitted SYN+ACK from a new
        # connection that reuses the 4-tuple.
        isn = packet.ack
        opened = self._open.get(key)
        if (opened is not None and opened.isn == isn) or self._ended.get(key) == isn:
            return
        self._ended.pop(key)
        timestamp_ns = packet.timestamp_ns
        opened = _open((syn_ack_fields(packet, self._names), "seen", timestamp_ns, isn, packet))
        self._open.put(key, opened, timestamp_ns)

    def _end(self, key: SocketKey, packet: Packet) -> None:
        opened = self._open.pop(key)
        timestamp_ns = packet.timestamp_ns
        if opened is None:
            local, remote = (key[0], key[1]), (key[2], key[3])
            fields = flow_fields(
                "unknown", local, remote, self._names, packet.cgroup_id, timestamp_ns
            )
            opened = _Open(fields, "missed", None, None, None)
        self._ended.put(key, opened.isn, timestamp_ns)
        totals = packet.totals or _UNKNOWN_TOTALS
        self._emit(
            timestamp_ns,
            {
                **opened.fields,
                "closed_by": CLOSED_BY[packet.direction],
                "closed_with": "rst" if packet.tcp_flags & TCP_RST else "fin",
                "begin": opened.begin,
                "duration_ns": None if opened.begin_ns is None else timestamp_ns - opened.begin_ns,
                # Written out, not merged from a dict: about 0.3 us less per end.
                "bytes_sent": totals[0],
                "bytes_received": totals[1],
                "segments_sent": totals[2],
                "segments_received": totals[3],
                "retransmits": totals[4],
                "srtt_us": totals[5],
                "min_rtt_us": totals[6],
            },
            # The local socket: the client's, or the accepted one, which has an owner only
            # if its listener is younger than the probe; if not, the listener's, from the begin.
            packet if packet.owner is not None or opened.syn_ack is None else opened.syn_ack,
        )


def _no_names(address: str, cgroup_id: int, timestamp_ns: int) -> list[str]:
    return []


SPEC = EventSpec(
    name="net_flow_tcp_end",
    id=2013,
    fields=(*FLOW_FIELDS, *(Field(name, kind) for name, kind in END_FIELDS + TOTALS_FIELDS)),
    sets=("network_events", "flows"),
    depends_on="net_packet_flow_base",
    needs=PacketKind.TCP_SYN_ACK | PacketKind.TCP_FIN_RST | PacketKind.TCP_TOTALS,
    handler=TcpEnd,
    description="TCP connection end (first FIN or RST of a connection); src is the initiator",
    uses_dns=True,
    loss_counters=("net_flow_tcp_end.flow_table_evictions",),
    tracee_id=2014,  # Tracee v0.24.1's NetFlowTCPEnd (pkg/events/core.go)
)
