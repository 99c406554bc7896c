"""net_flow_tcp_begin: one event per TCP connection start, seen at its SYN+ACK."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hostcore import (
    BoundedSet,
    Direction,
    EventContext,
    EventSpec,
    Field,
    Packet,
    PacketKind,
    hookimpl,
)
from hostcore_net_flow.connections import Names, flow_fields

# A server retransmits its SYN+ACK for up to 63 s (tcp_synack_retries = 5), so
# identities are kept at least that long, and at most this many of them (about
# 13 MB; beyond that the oldest go early, and are counted as evictions).
RECENT_CONNECTIONS = 65536
RETRANSMIT_WINDOW_NS = 64 * 10**9

# By the SYN+ACK's Direction: arriving answers our SYN, leaving answers a peer's.
CONN_DIRECTION = {Direction.INGRESS: "outgoing", Direction.EGRESS: "incoming"}


# The fields of every flow event (end and failed add theirs after these).
FLOW_FIELDS = (
    Field("conn_direction", "string"),
    Field("src", "string"),
    Field("dst", "string"),
    Field("src_port", "uint16"),
    Field("dst_port", "uint16"),
    Field("src_dns", "[]string"),
    Field("dst_dns", "[]string"),
    Field("community_id", "string"),
)


def syn_ack_fields(packet: Packet, names: Names) -> dict[str, Any]:
    """The flow fields a SYN+ACK gives: its own source is the responder."""
    return flow_fields(
        CONN_DIRECTION[packet.direction],
        (packet.dst, packet.dst_port),
        (packet.src, packet.src_port),
        names,
        packet.cgroup_id,
        packet.timestamp_ns,
    )


def handshake_ns(syn_ack: Packet) -> int | None:
    """From this host's connect() to the SYN+ACK answering it; None for an incoming
    connection (its handshake ends with a bare ACK, which the probe does not pass up)
    or a socket whose connect() the probe did not see."""
    if syn_ack.direction is Direction.INGRESS and syn_ack.connect_ns:
        return syn_ack.timestamp_ns - syn_ack.connect_ns
    return None


class TcpBegin:
    """SYN+ACK on ingress: this host connected out; on egress: a peer connected in.

    Fields are normalised so ``src`` is the initiator: the SYN+ACK's own source
    is the responder, so the event swaps its endpoints.
    """

    def __init__(self, context: EventContext) -> None:
        self._count = context.count
        self._emit = context.emit
        self._names = context.dns.names
        self._seen = BoundedSet(RECENT_CONNECTIONS, RETRANSMIT_WINDOW_NS)

    @hookimpl
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        seen, emit = self._seen, self._emit
        evicted = seen.evictions
        for packet in packets:
            # The client's ISN (ack - 1) tells a reused 4-tuple from a retransmission;
            # the direction keeps loopback's two sockets apart.
            key = (
                packet.direction,
                packet.src,
                packet.dst,
                packet.src_port,
                packet.dst_port,
                packet.ack,
            )
            timestamp_ns = packet.timestamp_ns
            if not seen.add(key, timestamp_ns):
                self._count("net_flow_tcp_begin.duplicate_syn_acks", 1)
                continue
            data = syn_ack_fields(packet, self._names)
            data["handshake_ns"] = handshake_ns(packet)
            # Its socket: the client's arriving, the listener's leaving.
            emit(timestamp_ns, data, packet)
        if seen.evictions > evicted:
            self._count("net_flow_tcp_begin.identities_forgotten", seen.evictions - evicted)


SPEC = EventSpec(
    name="net_flow_tcp_begin",
    id=2012,
    fields=(*FLOW_FIELDS, Field("handshake_ns", "uint64")),
    sets=("network_events", "flows"),
    depends_on="net_packet_flow_base",
    needs=PacketKind.TCP_SYN_ACK,
    handler=TcpBegin,
    description="TCP connection start (SYN+ACK seen); src is the initiator",
    uses_dns=True,
    tracee_id=2013,  # Tracee v0.24.1's NetFlowTCPBegin (pkg/events/core.go)
)
