"""net_flow_tcp_failed: a connection this host tried that never began (refused or unanswered)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from hostcore import (
    TCP_RST,
    BoundedMap,
    Direction,
    EventContext,
    EventSpec,
    Field,
    Packet,
    PacketKind,
    hookimpl,
    number_option,
)
from hostcore_net_flow.begin import FLOW_FIELDS
from hostcore_net_flow.connections import SocketKey, flow_fields, socket_key

# SYNs waiting for an answer (about 300 bytes each); beyond that the oldest are
# dropped and counted: their failure, if any, is lost.
PENDING_SYNS = 65536
# SYNs reported unanswered, remembered (seq by socket) while the kernel may still
# send them again: 6 retries take 127 s (tcp_syn_retries), so they give no second event.
REPORTED_SYNS = 65536
RETRY_WINDOW_NS = 130 * 10**9
DEFAULT_SYN_TIMEOUT_S = 10.0
SEQ_MASK = 0xFFFFFFFF


MIN_SYN_TIMEOUT_S = 0.001  # shorter would call every SYN unanswered before any answer


def syn_timeout_ns(options: Mapping[str, str]) -> int:
    seconds = number_option(options, "syn_timeout_s", DEFAULT_SYN_TIMEOUT_S, MIN_SYN_TIMEOUT_S)
    return int(seconds * 10**9)


class TcpFailed:
    """A SYN a local socket sent, answered by a RST (``refused``) or by nothing
    within the timeout (``unanswered``). A SYN+ACK, or any other segment
    arriving for that socket, means it was answered.

    Only this host's own attempts: a SYN arriving for a closed port finds no
    socket, and the probe (cgroup programs run for sockets) never sees it.
    """

    def __init__(self, context: EventContext) -> None:
        self._count = context.count
        self._emit = context.emit
        self._names = context.dns.names
        self._timeout_ns = syn_timeout_ns(context.options)
        self._pending: BoundedMap[SocketKey, Packet] = BoundedMap(PENDING_SYNS)
        self._reported: BoundedMap[SocketKey, int] = BoundedMap(REPORTED_SYNS)

    @hookimpl
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        evictions = self._pending.evictions + self._reported.evictions
        for packet in packets:
            key = socket_key(packet)
            if packet.kind is PacketKind.TCP_SYN:
                if packet.direction is Direction.EGRESS and self._is_new(key, packet):
                    self._pending.put(key, packet, packet.timestamp_ns)
            elif packet.direction is Direction.INGRESS:
                syn = self._pending.pop(key)
                if syn is not None and _refuses(packet, syn):
                    self._failed(syn, "refused", packet.timestamp_ns)
        self.hostcore_expire(packets[-1].timestamp_ns)
        evictions = self._pending.evictions + self._reported.evictions - evictions
        if evictions:
            self._count("net_flow_tcp_failed.flow_table_evictions", evictions)

    def _is_new(self, key: SocketKey, syn: Packet) -> bool:
        """Not a retransmission of a SYN waiting for an answer, or of one reported."""
        return key not in self._pending and self._reported.get(key) != syn.seq

    @hookimpl
    def hostcore_expire(self, now_ns: int) -> None:
        self._reported.expire(now_ns - RETRY_WINDOW_NS)
        for key, syn in self._pending.expire(now_ns - self._timeout_ns):
            failed_ns = syn.timestamp_ns + self._timeout_ns
            self._reported.put(key, syn.seq, failed_ns)
            self._failed(syn, "unanswered", failed_ns)

    def _failed(self, syn: Packet, reason: str, timestamp_ns: int) -> None:
        data = flow_fields(
            "outgoing",
            (syn.src, syn.src_port),
            (syn.dst, syn.dst_port),
            self._names,
            syn.cgroup_id,
            syn.timestamp_ns,
        )
        data["reason"] = reason
        self._emit(timestamp_ns, data, syn)  # the SYN's socket: the process that connected


def _refuses(packet: Packet, syn: Packet) -> bool:
    """A RST acknowledging the SYN (RFC 793: the answer of a port nobody listens on)."""
    return bool(packet.tcp_flags & TCP_RST) and packet.ack == (syn.seq + 1) & SEQ_MASK


SPEC = EventSpec(
    name="net_flow_tcp_failed",
    id=2014,
    fields=(*FLOW_FIELDS, Field("reason", "string")),
    sets=("network_events",),
    depends_on="net_packet_flow_base",
    needs=PacketKind.TCP_SYN | PacketKind.TCP_SYN_ACK | PacketKind.TCP_FIN_RST,
    handler=TcpFailed,
    description="TCP connection this host tried that failed: refused (RST) or unanswered",
    uses_dns=True,
    loss_counters=("net_flow_tcp_failed.flow_table_evictions",),
    options={
        "syn_timeout_s": f"seconds a SYN may wait for an answer (default {DEFAULT_SYN_TIMEOUT_S:g})"
    },
)
