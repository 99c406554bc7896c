"""Tell plainly unwanted pcap records from a few fixed offsets, before any frame is built.

The live probe's kernel filter drops the packets no enabled event wants before
user space; a replay drops them here, at the cost of one ``struct`` unpack per
record. Only the plainest case is told apart: a link header of fixed length
(Ethernet, Linux cooked v1, raw IP) around an IPv4 header without options or
fragmentation, over TCP or UDP. Everything else goes on to the full path
(``hostcore.replay``), whose own check from the IP header says the same for
these records and also covers the rest.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from hostcore.decoder import DNS_PORT, IPPROTO_TCP, IPPROTO_UDP
from hostcore.packet import PacketKind, tcp_kind

# Where the IP header starts, for link types whose header has one length; those with an
# EtherType have it in the two bytes just before the IP header.
_IP_AT = {1: 14, 113: 16, 12: 0, 14: 0, 101: 0, 228: 0}
_WITH_ETHERTYPE = {1, 113}
_WITH_DIRECTION = {113}
_RECORD_HEADER = 16
# What the replay's check from the IP header needs captured: 40 bytes of IP and transport.
_PLAIN_LENGTH = 40


class Skim(NamedTuple):
    """A record layout's fixed fields and the values that make a record plainly unwanted.

    ``fields`` unpacks, from a record's start: its captured length, the four bytes
    ending with the IP header's second (EtherType, version and header length), the
    four from the IP fragment field to the protocol, the source port and the TCP flags.
    Words are read in the file's byte order; masks and values are given in it too.
    """

    fields: struct.Struct
    shortest: int  # captured bytes a record needs to be told from these fields
    ip_mask: int
    ip_plain: int  # IPv4, a 20-byte header (and the EtherType for IPv4)
    whole_mask: int
    whole_tcp: int  # not a fragment, TCP
    whole_udp: int
    dns_port: int
    unwanted_flags: bytes  # by TCP flags byte: 1 if no enabled event wants that kind
    mark: int | None  # the IP header's offset, for the frames it keeps; None: not marked


def _in_order(value: int, size: int, byteorder: str) -> int:
    """A big-endian field's value as the file's byte order reads the same bytes."""
    return int.from_bytes(value.to_bytes(size, "big"), byteorder)  # type: ignore[arg-type]


def skim(order: str, link_type: int, wanted: tuple[PacketKind, ...]) -> Skim | None:
    """The skim for pcap records of ``link_type`` in byte order ``order`` ("<" or ">"),
    or None when that link type's header has no fixed length."""
    ip = _IP_AT.get(link_type)
    if ip is None:
        return None
    # A cooked header records the direction: its frames are left to hostcore.capture.links.
    mark = None if link_type in _WITH_DIRECTION else ip
    return skim_at(order, ip, link_type in _WITH_ETHERTYPE, wanted, mark)


def skim_at(
    order: str, ip: int, ethertype: bool, wanted: tuple[PacketKind, ...], mark: int | None
) -> Skim:
    """The skim for an IP header ``ip`` bytes into the frame, after an EtherType or not."""
    # Offsets from the record's start: the EtherType (or, for raw IP, two bytes of the
    # record header, masked out) begins two bytes before the IP header.
    at = _RECORD_HEADER + ip
    byteorder = "little" if order == "<" else "big"
    return Skim(
        fields=struct.Struct(f"{order}8xI{at - 14}xI4xI10xH11xB"),
        shortest=ip + _PLAIN_LENGTH,
        ip_mask=_in_order((0xFFFF0000 if ethertype else 0) | 0xFF00, 4, byteorder),
        ip_plain=_in_order((0x08000000 if ethertype else 0) | 0x4500, 4, byteorder),
        whole_mask=_in_order(0x3FFF00FF, 4, byteorder),
        whole_tcp=_in_order(IPPROTO_TCP, 4, byteorder),
        whole_udp=_in_order(IPPROTO_UDP, 4, byteorder),
        dns_port=_in_order(DNS_PORT, 2, byteorder),
        unwanted_flags=bytes(tcp_kind(flags) not in wanted for flags in range(256)),
        mark=mark,
    )
