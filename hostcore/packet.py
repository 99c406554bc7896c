"""The plain packet value every event plugin sees, and the kinds the probe can select."""

from __future__ import annotations

import enum
from typing import NamedTuple


class Direction(enum.IntEnum):
    """Which way the packet crossed this host's sockets."""

    INGRESS = 0
    EGRESS = 1


class PacketKind(enum.IntFlag):
    """Packet records an event can ask the probe for; the kernel filter is their union."""

    NONE = 0
    TCP_SYN_ACK = enum.auto()
    TCP_FIN_RST = enum.auto()
    TCP_SYN = enum.auto()
    DNS_ANSWER = enum.auto()  # UDP, or TCP with data, from port 53; may combine with a TCP kind
    # Not a kind of packet: asks that TCP_FIN_RST records of sockets seen established
    # come when the socket closes, with its totals (Packet.totals).
    TCP_TOTALS = enum.auto()


TCP_FIN = 0x01
TCP_SYN = 0x02
TCP_RST = 0x04
TCP_ACK = 0x10


def _classify(flags: int) -> PacketKind:
    if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN | TCP_ACK:
        return PacketKind.TCP_SYN_ACK
    if flags & (TCP_FIN | TCP_RST):
        return PacketKind.TCP_FIN_RST
    if flags & (TCP_SYN | TCP_ACK | TCP_RST) == TCP_SYN:
        return PacketKind.TCP_SYN
    return PacketKind.NONE


_KIND_BY_FLAGS = tuple(_classify(flags) for flags in range(256))


def tcp_kind(flags: int) -> PacketKind:
    """Classify TCP flags the way the kernel filter in bpf/ does."""
    return _KIND_BY_FLAGS[flags & 0xFF]


def kinds_wanted(needs: PacketKind) -> tuple[PacketKind, ...]:
    """Every kind a packet can have (a flag, or a TCP kind with DNS_ANSWER) that ``needs`` wants.

    Testing membership in this tuple compares by identity: IntFlag arithmetic
    per packet costs about 0.2 us.
    """
    every = [PacketKind.NONE, *(kind for kind in PacketKind if kind is not PacketKind.TCP_TOTALS)]
    combined = {kind | dns for kind in every for dns in (PacketKind.NONE, PacketKind.DNS_ANSWER)}
    return tuple(kind for kind in combined if kind & needs)


class OwnerSource(enum.IntEnum):
    """How a socket's owner was found (bpf/net_packet_flow_base.c OWNER_*, then user space)."""

    CREATED = 1  # the task that created the socket (recorded at socket())
    CONNECTED = 2  # the task that called connect()
    BOUND = 3  # the task that called bind()
    FOUND = 4  # a socket older than hostcore, matched to a process through /proc


class Owner(NamedTuple):
    """The process acting on a socket: for a client, the one that connected."""

    pid: int  # thread group id
    tid: int | None  # the thread; None when matched through /proc
    uid: int  # real uid
    comm: str
    source: OwnerSource
    cpu: int | None = None  # the CPU it ran on as it acted; None when matched through /proc


class TcpTotals(NamedTuple):
    """A TCP socket's counters at its close, from the kernel (struct tcp_info's), or
    as a capture shows them (hostcore.capture.connections)."""

    bytes_sent: int  # bytes the peer acknowledged (tcp_info bytes_acked)
    bytes_received: int
    segments_sent: int  # segments sent, retransmissions included (segs_out)
    segments_received: int  # segs_in
    retransmits: int  # segments retransmitted (total_retrans)
    srtt_us: int | None  # smoothed round-trip time, microseconds; None: not known (a capture)
    min_rtt_us: int | None  # the smallest round-trip time measured, microseconds


class Packet(NamedTuple):
    """One decoded TCP segment or UDP datagram, addresses as text (IPv4 dotted, IPv6 RFC 5952).

    Immutable: every enabled event's handler sees the same Packet objects.
    """

    timestamp_ns: int  # nanoseconds since the epoch
    direction: Direction
    kind: PacketKind
    src: str
    dst: str
    src_port: int
    dst_port: int
    seq: int  # TCP only; 0 for UDP
    ack: int  # TCP only
    tcp_flags: int  # TCP only
    cgroup_id: int  # cgroup v2 id of the local socket; 0 where unknown
    socket_cookie: int  # the local socket's cookie; 0 where unknown
    owner: Owner | None  # the local socket's owner (a listener's for a SYN+ACK leaving)
    protocol: int  # IPPROTO_TCP or IPPROTO_UDP
    payload: bytes  # what was captured after the TCP/UDP header (none for TCP kinds)
    payload_size: int  # what the packet carried; more than len(payload) means truncated
    connect_ns: int = 0  # when the local socket called connect() (ns since the epoch); 0: unknown
    totals: TcpTotals | None = None  # for a TCP_TOTALS end: its socket's counters at close


class OpenSocket(NamedTuple):
    """An established TCP socket the kernel reported (sock_diag), addresses as in Packet."""

    local: str
    local_port: int
    remote: str
    remote_port: int
    incoming: bool  # a listener holds its local port: a peer connected in
    socket_cookie: int
