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


class Packet(NamedTuple):
    """One decoded TCP segment, addresses as text (IPv4 dotted, IPv6 RFC 5952).

    Immutable: every enabled event's handler sees the same Packet objects.
    """

    timestamp_ns: int  # nanoseconds since the epoch
    direction: Direction
    kind: PacketKind
    src: str
    dst: str
    src_port: int
    dst_port: int
    seq: int
    ack: int
    tcp_flags: int
