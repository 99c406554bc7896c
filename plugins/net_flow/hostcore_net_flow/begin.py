"""net_flow_tcp_begin: one event per TCP connection start, seen at its SYN+ACK."""

from __future__ import annotations

from collections.abc import Sequence

from hostcore import Direction, EventContext, EventSpec, Field, Packet, PacketKind
from hostcore.events import Emit
from hostcore_net_flow.connections import RecentKeys

# A server retransmits its SYN+ACK for up to 63 s (tcp_synack_retries = 5), so
# identities are kept at least that long, and at most this many of them (about
# 13 MB; beyond that the oldest go early, and are counted as evictions).
RECENT_CONNECTIONS = 65536
RETRANSMIT_WINDOW_NS = 64 * 10**9

# By the SYN+ACK's Direction: arriving answers our SYN, leaving answers a peer's.
CONN_DIRECTION = {Direction.INGRESS: "outgoing", Direction.EGRESS: "incoming"}


def _fields() -> tuple[Field, ...]:
    return (
        Field("conn_direction", "string"),
        Field("src", "string"),
        Field("dst", "string"),
        Field("src_port", "uint16"),
        Field("dst_port", "uint16"),
        Field("src_dns", "[]string"),
        Field("dst_dns", "[]string"),
    )


class TcpBegin:
    """SYN+ACK on ingress: this host connected out; on egress: a peer connected in.

    Fields are normalised so ``src`` is the initiator: the SYN+ACK's own source
    is the responder, so the event swaps its endpoints.
    """

    def __init__(self, context: EventContext) -> None:
        self._count = context.count
        self._names = context.dns.names
        self._seen = RecentKeys(RECENT_CONNECTIONS, RETRANSMIT_WINDOW_NS)

    def handle(self, packets: Sequence[Packet], emit: Emit) -> None:
        evicted = self._seen.evictions
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
            if not self._seen.add(key, timestamp_ns):
                self._count("net_flow_tcp_begin.duplicate_syn_acks", 1)
                continue
            cgroup_id = packet.cgroup_id
            emit(
                timestamp_ns,
                {
                    "conn_direction": CONN_DIRECTION[packet.direction],
                    "src": packet.dst,
                    "dst": packet.src,
                    "src_port": packet.dst_port,
                    "dst_port": packet.src_port,
                    "src_dns": self._names(packet.dst, cgroup_id, timestamp_ns),
                    "dst_dns": self._names(packet.src, cgroup_id, timestamp_ns),
                },
                packet,  # its socket: the client's arriving, the listener's leaving
            )
        if self._seen.evictions > evicted:
            self._count("net_flow_tcp_begin.flow_table_evictions", self._seen.evictions - evicted)


SPEC = EventSpec(
    name="net_flow_tcp_begin",
    id=2012,
    fields=_fields(),
    sets=("network_events", "flows"),
    depends_on="net_packet_flow_base",
    needs=PacketKind.TCP_SYN_ACK,
    handler=TcpBegin,
    description="TCP connection start (SYN+ACK seen); src is the initiator",
    uses_dns=True,
)
