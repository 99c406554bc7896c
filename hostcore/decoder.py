"""Decode raw bytes, starting at the IP header, into a Packet (TCP or UDP).

Every source of packets goes through this one decoder, so that the same cases
test them all. Anything it cannot decode raises DecodeError with a short,
stable reason that callers count.
"""

from __future__ import annotations

import socket
import struct

from hostcore.bounded import BoundedCache
from hostcore.packet import Direction, Owner, Packet, PacketKind, TcpTotals, tcp_kind

IPPROTO_TCP = 6
IPPROTO_UDP = 17
DNS_PORT = 53
AF_INET: int = socket.AF_INET
_TRANSPORTS = (IPPROTO_TCP, IPPROTO_UDP)
_IPV6_EXTENSIONS = {0, 43, 60}  # hop-by-hop, routing, destination options: (len + 1) * 8 bytes
_IPV6_FRAGMENT = 44
_IPV6_AH = 51
MAX_IPV6_EXT_HEADERS = 8  # the same bound as bpf/net_packet_flow_base.c

_TCP = struct.Struct("!HHIIBB")
# IPv4 (20 bytes, no options: total length, fragment field, addresses) and TCP's first 14
_IPV4_TCP = struct.Struct("!2xH2xH4x4s4sHHIIBB")
_UDP = struct.Struct("!HHH")
# Packet's fields in order, without NamedTuple's generated __new__: a Python call
# per packet that costs more than the decoding around it.
_packet = tuple.__new__
_WITH_DNS = {kind: kind | PacketKind.DNS_ANSWER for kind in (PacketKind.NONE, *PacketKind)}

ADDRESS_CACHE_LIMIT = 65536  # distinct addresses kept as text


class DecodeError(ValueError):
    """A packet that cannot be decoded; ``reason`` is a stable counter name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Decoder:
    """Decodes packets, keeping address text by packed address: hosts talk to few
    addresses, and a shared str saves both the conversion and a copy per packet."""

    def __init__(self) -> None:
        self._addresses: BoundedCache[bytes, str] = BoundedCache(ADDRESS_CACHE_LIMIT)

    def decode(
        self,
        data: bytes,
        timestamp_ns: int,
        direction: Direction,
        cgroup_id: int = 0,
        socket_cookie: int = 0,
        owner: Owner | None = None,
        connect_ns: int = 0,
        totals: TcpTotals | None = None,
    ) -> Packet:
        """Decode one TCP segment or UDP datagram from its IP header on.

        What the packet cannot tell (its socket's cgroup, cookie, owner, when it
        called connect() and its totals) comes from the probe's record, or stays 0 and None.
        """
        plain = len(data) >= 40 and data[0] == 0x45 and data[9] == IPPROTO_TCP
        if plain:  # IPv4 without options, TCP: what the probe hands up, read in one unpack
            total, fragment, src, dst, src_port, dst_port, seq, ack, data_offset, flags = (
                _IPV4_TCP.unpack_from(data)
            )
            start = 20 + (data_offset >> 4) * 4
            end = total or len(data)  # 0: left to the NIC (TSO)
            plain = not fragment & 0x3FFF and data_offset >= 0x50 and end >= start
        if plain:
            family, protocol, payload_size = AF_INET, IPPROTO_TCP, end - start
            kind, payload = _tcp_kind(flags, src_port, payload_size), data[start:end]
        else:  # anything else, and every malformed case, the long way
            family, src, dst, protocol, transport = _network(data)
            kind, src_port, dst_port, seq, ack, flags, payload, payload_size = transport
        text = self._addresses
        return _packet(
            Packet,
            (
                timestamp_ns,
                direction,
                kind,
                text.get(src) or text.put(src, socket.inet_ntop(family, src)),
                text.get(dst) or text.put(dst, socket.inet_ntop(family, dst)),
                src_port,
                dst_port,
                seq,
                ack,
                flags,
                cgroup_id,
                socket_cookie,
                owner,
                protocol,
                payload,
                payload_size,
                connect_ns,
                totals,
            ),
        )


# family, packed src and dst, transport offset, end, protocol, whether it is a first fragment
_Network = tuple[int, bytes, bytes, int, int, int, bool]
# kind, src_port, dst_port, seq, ack, tcp_flags, payload, payload_size
_Transport = tuple[PacketKind, int, int, int, int, int, bytes, int]


def _network(data: bytes) -> tuple[int, bytes, bytes, int, _Transport]:
    """Family, packed addresses, protocol and the transport's fields, from any IP packet."""
    if not data:
        raise DecodeError("empty")
    version = data[0] >> 4
    if version == 4:
        family, src, dst, offset, end, protocol, first_fragment = _ipv4(data)
    elif version == 6:
        family, src, dst, offset, end, protocol, first_fragment = _ipv6(data)
    else:
        raise DecodeError("bad_ip_version")
    transport = _tcp if protocol == IPPROTO_TCP else _udp
    try:
        return family, src, dst, protocol, transport(data, offset, end)
    except DecodeError:
        if first_fragment:  # the rest is in later fragments, which are not reassembled
            raise DecodeError("ip_fragment_incomplete") from None
        raise


def _ipv4(data: bytes) -> _Network:
    if len(data) < 20:
        raise DecodeError("truncated_ip")
    header_len = (data[0] & 0x0F) * 4
    if header_len < 20:
        raise DecodeError("bad_ip_header_length")
    if len(data) < header_len:
        raise DecodeError("truncated_ip")
    fragment = data[6] << 8 | data[7]
    if fragment & 0x1FFF:  # not the first: no transport header here
        raise DecodeError("ip_fragment")
    protocol = data[9]
    if protocol not in _TRANSPORTS:
        raise DecodeError("not_tcp_or_udp")
    total_length = data[2] << 8 | data[3]
    if total_length == 0:  # left to the NIC (TSO): the packet ends where the data does
        total_length = len(data)
    elif total_length < header_len:
        raise DecodeError("bad_ip_length")
    return (
        socket.AF_INET,
        data[12:16],
        data[16:20],
        header_len,
        total_length,
        protocol,
        bool(fragment & 0x2000),
    )


def _ipv6(data: bytes) -> _Network:
    if len(data) < 40:
        raise DecodeError("truncated_ip")
    payload_length = data[4] << 8 | data[5]
    end = 40 + payload_length if payload_length else len(data)  # 0: a jumbogram
    next_header = data[6]
    offset = 40
    first_fragment = False
    for _ in range(MAX_IPV6_EXT_HEADERS):
        if next_header in _TRANSPORTS:
            break
        if len(data) < offset + 8:
            raise DecodeError("truncated_ip")
        if next_header in _IPV6_EXTENSIONS:
            length = (data[offset + 1] + 1) * 8
        elif next_header == _IPV6_FRAGMENT:
            fragment = data[offset + 2] << 8 | data[offset + 3]
            if fragment & 0xFFF8:  # not the first: no transport header here
                raise DecodeError("ip_fragment")
            first_fragment = bool(fragment & 1)  # more follow; 0 here is an atomic fragment
            length = 8
        elif next_header == _IPV6_AH:
            length = (data[offset + 1] + 2) * 4
        else:
            raise DecodeError("not_tcp_or_udp")
        if len(data) < offset + length:
            raise DecodeError("truncated_ip")
        next_header = data[offset]
        offset += length
    if next_header not in _TRANSPORTS:
        raise DecodeError("ipv6_extension_chain_too_long")
    if end < offset:
        raise DecodeError("bad_ip_length")
    return socket.AF_INET6, data[8:24], data[24:40], offset, end, next_header, first_fragment


def _tcp(data: bytes, offset: int, end: int) -> _Transport:
    if len(data) < offset + 20:
        raise DecodeError("truncated_tcp")
    src_port, dst_port, seq, ack, data_offset, flags = _TCP.unpack_from(data, offset)
    if data_offset >> 4 < 5:
        raise DecodeError("bad_tcp_header_length")
    start = offset + (data_offset >> 4) * 4
    payload_size = end - start
    if payload_size < 0:
        raise DecodeError("bad_tcp_header_length")
    kind = _tcp_kind(flags, src_port, payload_size)
    return kind, src_port, dst_port, seq, ack, flags, data[start:end], payload_size


def _tcp_kind(flags: int, src_port: int, payload_size: int) -> PacketKind:
    kind = tcp_kind(flags)
    return _WITH_DNS[kind] if src_port == DNS_PORT and payload_size else kind


def _udp(data: bytes, offset: int, end: int) -> _Transport:
    if len(data) < offset + 8:
        raise DecodeError("truncated_udp")
    src_port, dst_port, length = _UDP.unpack_from(data, offset)
    if length < 8 or offset + length > end:
        raise DecodeError("bad_udp_length")
    kind = PacketKind.DNS_ANSWER if src_port == DNS_PORT else PacketKind.NONE
    return kind, src_port, dst_port, 0, 0, 0, data[offset + 8 : offset + length], length - 8
