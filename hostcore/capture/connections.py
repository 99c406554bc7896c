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

# Connections followed at once, established ones and, apart, handshakes begun (about
# 400 bytes each, so at most about 52 MB). When the established are full, the oldest
# is forgotten and counted: an end it held goes on with no totals. A handshake
# forgotten only loses its SYN's time (handshake_ns null).
CONNECTIONS = 65536
FORGOTTEN = "replay.connections_forgotten"

_MASK = 0xFFFFFFFF
_HALF = 1 << 31
_EGRESS = Direction.EGRESS
_WITH_DNS = PacketKind.DNS_ANSWER
_SYN_ACK = TCP_SYN | TCP_ACK

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
        "reset_by_local",
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
        self.reset_by_local = False  # its last acknowledgement is what it took in

    def leaving(self, seq: int, ack: int, flags: int, size: int) -> None:
        """Count a segment of ``size`` data bytes the local end sent (a SYN+ACK leaving
        not among the segments: its listener sent it, not this socket, as live)."""
        if flags & _SYN_ACK != _SYN_ACK:
            self.segments_sent += 1
        if self.local_isn is not None:
            sent = self.sent
            start = _offset(seq, self.local_isn, sent)
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
            start = _offset(seq, self.peer_isn, received)
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
            bytes_received=self._received(local_acked) - 1,
            segments_sent=self.segments_sent,
            segments_received=self.segments_received,
            retransmits=self.retransmits,
            srtt_us=None,
            min_rtt_us=None,
        )

    def _received(self, local_acked: int) -> int:
        """Offset after the last byte taken in: as the local end acknowledged it, or
        further as data arrived in sequence after that. A RST the local end sent says
        exactly (data arriving after a close() is refused with a RST, not taken in)."""
        return local_acked if self.reset_by_local else max(self.received, local_acked)


class Connections:
    """Passes a replay's packets on as the probe would hand them up; see the module."""

    def __init__(self, totals: bool, count: Callable[[str, int], None]) -> None:
        self._totals = totals
        self._count = count
        # A handshake begun (a SYN seen): one that never ends only ages out of here.
        self._syns: OrderedDict[Key, _Connection] = OrderedDict()
        # Established, with totals: forgotten only when full, and then counted.
        self._open: OrderedDict[Key, _Connection] = OrderedDict()
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
        connection = self._open.get(key) or self._syns.get(key)
        if flags & TCP_SYN:
            connection = self._handshake(key, packet, egress, connection)
            syn_ns = connection.syn_ns
            if syn_ns and not egress and flags & TCP_ACK and syn_ns <= packet.timestamp_ns:
                packet = packet._replace(connect_ns=syn_ns)
        if connection is None or not self._totals:
            return packet
        if egress:
            connection.leaving(seq, ack, flags, packet.payload_size)
        else:
            connection.arriving(seq, ack, flags, packet.payload_size)
        handed: Packet | None = None
        if flags & (TCP_FIN | TCP_RST):
            if connection.peer_isn is None or connection.local_isn is None:
                self._syns.pop(key, None)  # the attempt is over, not seen established
                return packet  # on at once, as live
            if kind & _WITH_DNS:  # on at once for the DNS store, as live: the end
                self._forget(key)
                return packet
            if connection.held is None:
                connection.held = packet
            if egress and flags & TCP_RST:
                connection.reset_by_local = True
        elif connection.held is None:
            return packet
        else:
            handed = packet
        if flags & TCP_RST or self._closed(connection):
            del self._open[key]
            self.released.append(connection.held._replace(totals=connection.totals()))
        return handed

    def held_ends(self) -> list[Packet]:
        """The ends still held, as live at stop: no totals. Forgets every connection."""
        ends = [c.held for c in self._open.values() if c.held is not None]
        self._open.clear()
        self._syns.clear()
        return ends

    def _handshake(
        self, key: Key, packet: Packet, egress: bool, connection: _Connection | None
    ) -> _Connection:
        """The connection a SYN or SYN+ACK belongs to: a new initiator's ISN is a new one."""
        acks = packet.tcp_flags & TCP_ACK
        incoming = egress == bool(acks)  # a SYN arriving or a SYN+ACK leaving
        isn = packet.ack - 1 if acks else packet.seq  # the initiator's
        if connection is None or (connection.peer_isn if incoming else connection.local_isn) != isn:
            self._forget(key)  # a 4-tuple used again before the capture showed its close
            syn_ns = 0 if incoming or acks else packet.timestamp_ns
            connection = _Connection(syn_ns, None if incoming else isn, isn if incoming else None)
            if not acks:
                _put(self._syns, key, connection)
        if acks:
            if incoming:
                connection.local_isn = packet.seq
            else:
                connection.peer_isn = packet.seq
            self._syns.pop(key, None)
            if self._totals and key not in self._open:
                oldest = _put(self._open, key, connection)
                if oldest is not None:
                    self._count(FORGOTTEN, 1)
                    self._let_go(oldest)
        return connection

    def _forget(self, key: Key) -> None:
        """Forget ``key``'s connection."""
        self._syns.pop(key, None)
        self._let_go(self._open.pop(key, None))

    def _let_go(self, connection: _Connection | None) -> None:
        """An end that a connection no longer followed held goes on without totals."""
        if connection is not None and connection.held is not None:
            self.released.append(connection.held)

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


def _put(
    table: OrderedDict[Key, _Connection], key: Key, connection: _Connection
) -> _Connection | None:
    """Add ``connection``; when ``table`` is full, the oldest goes, and is returned."""
    oldest = table.popitem(last=False)[1] if len(table) >= CONNECTIONS else None
    table[key] = connection
    return oldest
