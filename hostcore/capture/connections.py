"""What the probe's kernel side adds to a socket's packets, rebuilt from a capture.

Live, the probe stamps a SYN+ACK arriving with its socket's connect() time and,
when an event asks for TCP_TOTALS, holds a socket's first FIN or RST until the
socket closes, then hands it up with the socket's counters. A capture has no
socket: ``Connections`` follows each connection's packets from its local end
(the direction the replay gave them) and does the same from what the capture shows.

- connect(): the capture time of the connection's first SYN leaving.
- Closed: at a RST, or once both FINs are acknowledged; an end still held when the
  replay ends goes on with ``totals`` None, as live at stop.
- Bytes: ``bytes_sent`` is what the peer acknowledged, ``bytes_received`` the
  peer's data in sequence, SYN and FIN not counted (the kernel's counters, as the
  probe reports them). Segments are every one through the local end, retransmissions
  included; a retransmission is a segment leaving that repeats sequence space
  already sent (a SYN, data or a FIN).
- Round-trip times: None. The kernel's estimates come from its own samples
  (timestamps, delayed ACKs, Karn's rule), which a capture can only guess at.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from hostcore.decoder import IPPROTO_TCP
from hostcore.packet import (
    TCP_ACK,
    TCP_FIN,
    TCP_RST,
    TCP_SYN,
    Direction,
    Packet,
    PacketKind,
    TcpTotals,
)

# Connections followed at once (about 400 bytes each, so about 26 MB); when full, the
# oldest is forgotten and counted: an end it held goes on with no totals.
CONNECTIONS = 65536
FORGOTTEN = "replay.connections_forgotten"

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_EGRESS = Direction.EGRESS
_WITH_DNS = PacketKind.DNS_ANSWER

Key = tuple[str, int, str, int]  # local address and port, remote address and port


def _offset(value: int, isn: int, near: int) -> int:
    """Sequence number ``value`` as an offset from ``isn``: of its aliases 2**32 apart,
    the one nearest ``near`` (so a connection may carry more than 4 GiB)."""
    return near + ((value - isn - near + _HALF) & _MASK) - _HALF


class _Connection:
    """One connection, from its local end. Offsets count from each side's ISN (its SYN
    is offset 0, its first data byte 1); None until that side's ISN is seen."""

    __slots__ = (
        "acked",
        "held",
        "local_acked",
        "local_fin",
        "local_isn",
        "peer_fin",
        "peer_isn",
        "received",
        "retransmits",
        "segments_received",
        "segments_sent",
        "sent",
        "syn_ns",
    )

    def __init__(self, syn_ns: int, local_isn: int | None, peer_isn: int | None) -> None:
        self.syn_ns = syn_ns  # the first SYN leaving's time; 0 for an incoming connection
        self.local_isn = local_isn
        self.peer_isn = peer_isn
        self.sent = 0  # offset after the last sequence number sent
        self.acked = 0  # the highest acknowledgement from the peer
        self.received = 1  # offset after the peer's last data byte in sequence
        self.local_acked = 0  # the highest acknowledgement from the local end
        self.local_fin: int | None = None  # offset after each side's FIN
        self.peer_fin: int | None = None
        self.segments_sent = 0
        self.segments_received = 0
        self.retransmits = 0
        self.held: Packet | None = None  # the first FIN or RST, until the close

    def leaving(self, seq: int, ack: int, flags: int, size: int) -> None:
        """Count a segment of ``size`` data bytes the local end sent."""
        self.segments_sent += 1
        if self.local_isn is not None:
            sent = self.sent
            start = sent + ((seq - self.local_isn - sent + _HALF) & _MASK) - _HALF
            end = start + size + (1 if flags & TCP_SYN else 0) + (flags & TCP_FIN)
            if start < sent and end > start:  # repeats sequence space sent before
                self.retransmits += 1
            if end > sent:
                self.sent = end
            if flags & TCP_FIN:
                self.local_fin = end
        if flags & TCP_ACK and self.peer_isn is not None:
            acked = _offset(ack, self.peer_isn, self.local_acked)
            if acked > self.local_acked:
                self.local_acked = acked

    def arriving(self, seq: int, ack: int, flags: int, size: int) -> None:
        """Count a segment of ``size`` data bytes the peer sent."""
        self.segments_received += 1
        if self.peer_isn is not None:
            received = self.received
            start = received + ((seq - self.peer_isn - received + _HALF) & _MASK) - _HALF
            data_end = start + size + (1 if flags & TCP_SYN else 0)
            if start <= received < data_end:  # in sequence: adds what is new
                self.received = data_end
            if flags & TCP_FIN:
                self.peer_fin = data_end + 1
        if flags & TCP_ACK and self.local_isn is not None:
            acked = _offset(ack, self.local_isn, self.acked)
            if acked > self.acked:
                self.acked = acked

    def totals(self) -> TcpTotals:
        local_fin, peer_fin, acked, local_acked = (
            self.local_fin,
            self.peer_fin,
            self.acked,
            self.local_acked,
        )
        if local_fin is not None and acked >= local_fin:
            acked -= 1
        if peer_fin is not None and local_acked >= peer_fin:
            local_acked -= 1
        return TcpTotals(
            bytes_sent=max(acked - 1, 0),
            # In sequence as it arrived, or as the local end acknowledged it (data
            # that came out of order is only counted once the gap is filled).
            bytes_received=max(self.received, local_acked) - 1,
            segments_sent=self.segments_sent,
            segments_received=self.segments_received,
            retransmits=self.retransmits,
            srtt_us=None,
            min_rtt_us=None,
        )


class Connections:
    """Passes a replay's packets on as the probe would hand them up; see the module."""

    def __init__(self, totals: bool, count: Callable[[str, int], None]) -> None:
        self._totals = totals
        self._count = count
        self._connections: OrderedDict[Key, _Connection] = OrderedDict()
        self.released: list[Packet] = []  # held ends whose connection closed, to hand on

    def see(self, packet: Packet) -> Packet | None:
        """``packet`` to hand on (a SYN+ACK arriving stamped with connect()), or None: a
        FIN or RST held until its connection closes, or a later one (the probe hands up
        only the first). Ends this packet closes are added to ``released``."""
        _, direction, kind, src, dst, src_port, dst_port, seq, ack, flags, *_ = packet
        if packet.protocol != IPPROTO_TCP:
            return packet
        egress = direction is _EGRESS
        key = (src, src_port, dst, dst_port) if egress else (dst, dst_port, src, src_port)
        connection = self._connections.get(key)
        if flags & TCP_SYN:
            connection = self._handshake(key, packet, egress, connection)
            if connection.syn_ns and not egress and flags & TCP_ACK:
                packet = packet._replace(connect_ns=connection.syn_ns)
        if connection is None or not self._totals:
            return packet
        if egress:
            connection.leaving(seq, ack, flags, packet.payload_size)
        else:
            connection.arriving(seq, ack, flags, packet.payload_size)
        handed: Packet | None = None
        if flags & (TCP_FIN | TCP_RST):
            if connection.peer_isn is None or connection.local_isn is None:
                return packet  # not seen established: on at once, as live
            if kind & _WITH_DNS:
                return packet  # DNS's answer: on at once, as live
            if connection.held is None:
                connection.held = packet
        elif connection.held is None:
            return packet
        else:
            handed = packet
        if flags & TCP_RST or self._closed(connection):
            del self._connections[key]
            self.released.append(connection.held._replace(totals=connection.totals()))
        return handed

    def held_ends(self) -> list[Packet]:
        """The ends still held, as live at stop: no totals. Forgets every connection."""
        ends = [c.held for c in self._connections.values() if c.held is not None]
        self._connections.clear()
        return ends

    def _handshake(
        self, key: Key, packet: Packet, egress: bool, connection: _Connection | None
    ) -> _Connection:
        """The connection a SYN or SYN+ACK belongs to: a new ISN is a new connection."""
        acks = packet.tcp_flags & TCP_ACK
        if egress == bool(acks):  # a SYN arriving or a SYN+ACK leaving: a peer connected in
            peer_isn = packet.ack - 1 if acks else packet.seq
            if connection is None or connection.peer_isn != peer_isn:
                connection = self._start(key, _Connection(0, None, peer_isn))
            if acks:
                connection.local_isn = packet.seq
        else:  # a SYN leaving or a SYN+ACK arriving: the local end connected out
            local_isn = packet.ack - 1 if acks else packet.seq
            if connection is None or connection.local_isn != local_isn:
                syn_ns = 0 if acks else packet.timestamp_ns
                connection = self._start(key, _Connection(syn_ns, local_isn, None))
            if acks:
                connection.peer_isn = packet.seq
        return connection

    def _start(self, key: Key, connection: _Connection) -> _Connection:
        connections = self._connections
        old = connections.pop(key, None)
        if old is not None and old.held is not None:  # a 4-tuple reused before its close
            self.released.append(old.held)
        if len(connections) >= CONNECTIONS:
            _, oldest = connections.popitem(last=False)
            self._count(FORGOTTEN, 1)
            if oldest.held is not None:
                self.released.append(oldest.held)
        connections[key] = connection
        return connection

    @staticmethod
    def _closed(connection: _Connection) -> bool:
        """Both FINs sent and acknowledged."""
        local_fin, peer_fin = connection.local_fin, connection.peer_fin
        return (
            local_fin is not None
            and peer_fin is not None
            and connection.acked >= local_fin
            and connection.local_acked >= peer_fin
        )
