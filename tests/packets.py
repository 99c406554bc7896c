"""Build raw IP/TCP/UDP bytes for decoder tests (checksums are not checked by the decoder)."""

from __future__ import annotations

import ipaddress
import struct

SYN, ACK, FIN, RST = 0x02, 0x10, 0x01, 0x04


def tcp(src_port: int, dst_port: int, flags: int, seq: int = 1000, ack: int = 0) -> bytes:
    return struct.pack("!HHIIBBHHH", src_port, dst_port, seq, ack, 5 << 4, flags, 65535, 0, 0)


def udp(src_port: int, dst_port: int, payload: bytes) -> bytes:
    return struct.pack("!HHHH", src_port, dst_port, 8 + len(payload), 0) + payload


def ipv4(
    src: str,
    dst: str,
    payload: bytes,
    options: bytes = b"",
    proto: int = 6,
    total_length: int | None = None,
) -> bytes:
    assert len(options) % 4 == 0
    ihl = 5 + len(options) // 4
    header = struct.pack(
        "!BBHHHBBH4s4s",
        0x40 | ihl,
        0,
        ihl * 4 + len(payload) if total_length is None else total_length,
        1,
        0x4000,
        64,
        proto,
        0,
        ipaddress.IPv4Address(src).packed,
        ipaddress.IPv4Address(dst).packed,
    )
    return header + options + payload


def ipv6(
    src: str, dst: str, payload: bytes, next_header: int = 6, extensions: bytes = b""
) -> bytes:
    header = struct.pack(
        "!IHBB16s16s",
        6 << 28,
        len(extensions) + len(payload),
        next_header,
        64,
        ipaddress.IPv6Address(src).packed,
        ipaddress.IPv6Address(dst).packed,
    )
    return header + extensions + payload


def extension(next_header: int, body_units: int = 0) -> bytes:
    """A hop-by-hop/routing/destination options header of (1 + body_units) * 8 bytes."""
    return bytes([next_header, body_units]) + bytes(6 + 8 * body_units)


def fragment(next_header: int, offset_units: int = 0, more: bool = True) -> bytes:
    return struct.pack("!BBHI", next_header, 0, offset_units << 3 | int(more), 0x1234)
