"""Write pcap and pcapng files for tests and the replay benchmark (tshark reads them back)."""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import BinaryIO

ETHERNET = 1
_MACS = bytes.fromhex("020000000002020000000001")
# pcapng packet flags, direction bits: 1 inbound, 2 outbound.
INBOUND, OUTBOUND = 1, 2

Record = tuple[int, bytes]  # timestamp_ns, frame


def ethernet(packet: bytes) -> bytes:
    """An IPv4 or IPv6 packet in an Ethernet frame."""
    return _MACS + (b"\x86\xdd" if packet[0] >> 4 == 6 else b"\x08\x00") + packet


def pcap(
    out: BinaryIO,
    records: Iterable[Record],
    link_type: int = ETHERNET,
    order: str = "<",
    nanoseconds: bool = False,
    snaplen: int = 65535,
) -> None:
    magic = 0xA1B23C4D if nanoseconds else 0xA1B2C3D4
    out.write(struct.pack(order + "IHHiIII", magic, 2, 4, 0, 0, snaplen, link_type))
    unit = 1 if nanoseconds else 1000
    header = struct.Struct(order + "IIII")
    for timestamp_ns, frame in records:
        seconds, rest = divmod(timestamp_ns, 10**9)
        captured = frame[:snaplen]
        out.write(header.pack(seconds, rest // unit, len(captured), len(frame)))
        out.write(captured)


def _block(kind: int, body: bytes, order: str = "<") -> bytes:
    body += bytes(-len(body) % 4)
    length = len(body) + 12
    return struct.pack(order + "II", kind, length) + body + struct.pack(order + "I", length)


def _option(code: int, value: bytes, order: str = "<") -> bytes:
    return struct.pack(order + "HH", code, len(value)) + value + bytes(-len(value) % 4)


def pcapng_section(order: str = "<") -> bytes:
    return _block(0x0A0D0D0A, struct.pack(order + "IHHq", 0x1A2B3C4D, 1, 0, -1), order)


def pcapng_interface(link_type: int, tsresol: int | None = None, order: str = "<") -> bytes:
    options = b""
    if tsresol is not None:
        options = _option(9, bytes([tsresol]), order) + _option(0, b"", order)
    return _block(1, struct.pack(order + "HHI", link_type, 0, 0) + options, order)


def pcapng_simple_packet(frame: bytes, order: str = "<") -> bytes:
    """A Simple Packet Block: interface 0, no timestamp."""
    return _block(3, struct.pack(order + "I", len(frame)) + frame, order)


def pcapng_packet(
    interface: int,
    timestamp_units: int,
    frame: bytes,
    flags: int | None = None,
    order: str = "<",
) -> bytes:
    body = struct.pack(
        order + "IIIII",
        interface,
        timestamp_units >> 32,
        timestamp_units & 0xFFFFFFFF,
        len(frame),
        len(frame),
    )
    body += frame + bytes(-len(frame) % 4)
    if flags is not None:
        body += _option(2, struct.pack(order + "I", flags), order) + _option(0, b"", order)
    return _block(6, body, order)
