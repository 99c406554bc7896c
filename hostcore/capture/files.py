"""Read pcap and pcapng files into frames: timestamp, link type, bytes, direction if recorded.

Our own reader, not a library's: dpkt's pcapng reader (1.9.8) applies the
first interface's link type to every packet, drops the per-packet direction
flags, and turns timestamps into float seconds, which lose the nanoseconds;
all three matter here. Both formats are small and fully
specified (libpcap's pcap-savefile, IETF draft-ietf-opsawg-pcapng); every
length is checked against the file before it is used.
"""

from __future__ import annotations

import mmap
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

from hostcore.capture.skim import skim, skim_at
from hostcore.packet import Direction, PacketKind

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1000),  # little-endian, microseconds
    b"\xa1\xb2\xc3\xd4": (">", 1000),
    b"\x4d\x3c\xb2\xa1": ("<", 1),  # nanoseconds
    b"\xa1\xb2\x3c\x4d": (">", 1),
}
_SECTION_MAGIC = b"\x0a\x0d\x0d\x0a"
_BYTE_ORDER_MAGIC = 0x1A2B3C4D
_INTERFACE, _OLD_PACKET, _SIMPLE_PACKET, _ENHANCED_PACKET = 1, 2, 3, 6
_OPT_END, _OPT_FLAGS, _OPT_TSRESOL, _OPT_TSOFFSET = 0, 2, 9, 14
# pcapng packet flags, bits 0-1: 1 inbound, 2 outbound (0: not recorded).
_FLAG_DIRECTION = {1: Direction.INGRESS, 2: Direction.EGRESS}
MAX_TIMESTAMP_NS = 2**63  # what the event map's uint64 holds with room to spare
MAX_PACKET = 262144  # tcpdump's largest snap length: a longer record is corrupt
_GZIP_MAGIC = b"\x1f\x8b"
CHUNK = 1024  # packet records at a time: how often a reader can look up (progress, a signal)
_NO_SKIM = skim_at("<", 0, False, (), None)  # never used: a file without a skim skims nothing


class CaptureError(ValueError):
    """The file is not a capture, or breaks off; ``reason`` is a stable counter name."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


class Frame(NamedTuple):
    timestamp_ns: int  # since the epoch
    link_type: int  # LINKTYPE_* of the interface that captured it
    data: bytes  # what was captured: may be cut short by the snap length
    wire_length: int  # the packet's length on the wire
    direction: Direction | None  # as the capture recorded it, if it did
    # Where the IP header starts, if the reader's skim found it there (a plain IPv4 header
    # over TCP or UDP that it kept: see skim.py); None: not looked for.
    ip_offset: int | None = None


# Frame's fields in order, without NamedTuple's generated __new__ (a Python call per frame).
_frame = tuple.__new__


class Chunk(NamedTuple):
    """Consecutive packet records of a file: how many, and the frames of those not skimmed."""

    records: int  # the skimmed ones included
    skimmed: int  # plainly of kinds not wanted: no frame made
    frames: list[Frame]  # the others, in file order
    first_ns: int  # capture times of the first and the last record
    last_ns: int


def _chunk_of(frames: list[Frame]) -> Chunk:
    return Chunk(len(frames), 0, frames, frames[0].timestamp_ns, frames[-1].timestamp_ns)


class _Interface(NamedTuple):
    link_type: int
    ns_per_unit: tuple[int, int]  # numerator, denominator: ns = units * num // den
    offset_ns: int


class CaptureFile:
    """An open capture file; iterate it for frames. ``position`` and ``size`` give progress."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.position = 0
        # Packet blocks skipped, by reason: the blocks around them were sound, so reading went on.
        self.bad_blocks: Counter[str] = Counter()
        if path.exists() and not path.is_file():  # before opening: a pipe's open would block
            raise CaptureError(
                "not_a_capture", f"{path}: not a regular file (save what a pipe carries first)"
            )
        with path.open("rb") as file:
            self.size = path.stat().st_size
            if self.size < 24:
                raise CaptureError("not_a_capture", f"{path}: too short for a pcap or pcapng file")
            self._map = mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        magic = self._map[:4]
        if magic in _PCAP_MAGIC:
            self.format = "pcap"
        elif magic == _SECTION_MAGIC:
            self.format = "pcapng"
        else:
            self.close()
            hint = " (gzip-compressed: decompress it first)" if magic[:2] == _GZIP_MAGIC else ""
            raise CaptureError(
                "not_a_capture",
                f"{path}: not a pcap or pcapng file (starts with {magic.hex()}){hint}",
            )

    def __enter__(self) -> CaptureFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        self._map.close()

    def __iter__(self) -> Iterator[Frame]:
        for chunk in self.chunks():
            yield from chunk.frames

    def chunks(self, wanted: tuple[PacketKind, ...] | None = None) -> Iterator[Chunk]:
        """The file's packet records, CHUNK at a time.

        With ``wanted``, records of pcap files that are plainly of kinds not in it are
        counted in ``Chunk.skimmed`` and get no frame (see ``hostcore.capture.skim``).
        """
        return self._pcap(wanted) if self.format == "pcap" else self._pcapng_chunks()

    def _broken(self, reason: str, what: str) -> CaptureError:
        return CaptureError(reason, f"{self.path}: {what} at byte {self.position}")

    def _pcap(self, wanted: tuple[PacketKind, ...] | None) -> Iterator[Chunk]:
        data = self._map
        order, ns_per_unit = _PCAP_MAGIC[data[:4]]
        snaplen, link_type = struct.unpack_from(order + "II", data, 16)
        link_type &= 0xFFFF  # the high bits may say how much FCS frames carry
        longest = max(snaplen, MAX_PACKET)
        record = struct.Struct(order + "IIII")
        size = self.size
        plan = None if wanted is None else skim(order, link_type, wanted)
        fields, shortest, ip_mask, ip_plain, whole_mask, tcp, udp, dns, unwanted, mark = (
            plan or _NO_SKIM
        )
        skim_end = size - fields.size if plan else -1  # where the skim's fields still fit
        unpack_fields = fields.unpack_from

        def time_at(position: int) -> int:
            seconds, fraction = record.unpack_from(data, position)[:2]
            timestamp_ns: int = seconds * 1_000_000_000 + fraction * ns_per_unit
            return timestamp_ns

        position = 24
        while position < size:
            frames: list[Frame] = []
            first = last = position
            skimmed, error = 0, None
            for _ in range(CHUNK):
                ip_at = None
                if position <= skim_end:
                    captured, ip, whole, port, flags = unpack_fields(data, position)
                    end = position + 16 + captured
                    if shortest <= captured <= longest and ip & ip_mask == ip_plain:
                        whole &= whole_mask
                        if (
                            end <= size
                            and port != dns
                            and ((whole == tcp and unwanted[flags]) or whole == udp)
                        ):
                            skimmed += 1
                            last, position = position, end
                            continue
                        if whole in (tcp, udp):
                            ip_at = mark
                if position >= size:
                    break
                self.position = position
                if position + 16 > size:
                    error = self._broken("truncated_file", "the file ends inside a record header")
                    break
                seconds, fraction, captured, wire_length = record.unpack_from(data, position)
                if captured > longest:  # no length to trust after this one: the rest is unread
                    error = self._broken("bad_record_length", f"a record of {captured} bytes")
                    break
                start = position + 16
                end = start + captured
                if end > size:
                    error = self._broken("truncated_file", "the file ends inside a packet")
                    break
                timestamp_ns = seconds * 1_000_000_000 + fraction * ns_per_unit
                frames.append(
                    _frame(
                        Frame, (timestamp_ns, link_type, data[start:end], wire_length, None, ip_at)
                    )
                )
                last, position = position, end
            self.position = position
            if skimmed or frames:
                yield Chunk(skimmed + len(frames), skimmed, frames, time_at(first), time_at(last))
            if error:
                raise error

    def _pcapng_chunks(self) -> Iterator[Chunk]:
        frames: list[Frame] = []
        try:
            for frame in self._pcapng():
                frames.append(frame)
                if len(frames) == CHUNK:
                    yield _chunk_of(frames)
                    frames = []
        except CaptureError:
            if frames:  # what came before the break is read
                yield _chunk_of(frames)
            raise
        if frames:
            yield _chunk_of(frames)

    def _pcapng(self) -> Iterator[Frame]:
        data = self._map
        size = self.size
        order = "<"
        interfaces: list[_Interface] = []
        last_ns = 0
        position = 0
        while position < size:
            self.position = position
            if position + 12 > size:
                raise self._broken("truncated_file", "the file ends inside a block header")
            if data[position : position + 4] == _SECTION_MAGIC:
                order = self._section_order(position)
                interfaces = []
            block_type, length = struct.unpack_from(order + "II", data, position)
            end = position + length
            if length < 12 or length % 4 or end > size:
                raise self._broken(
                    "truncated_file" if end > size else "bad_block_length",
                    f"a block of length {length}",
                )
            if struct.unpack_from(order + "I", data, end - 4)[0] != length:
                raise self._broken("bad_block_length", "a block whose two lengths differ")
            body = position + 8
            if block_type == _INTERFACE:
                interfaces.append(self._interface(order, body, end - 4))
            elif block_type in (_ENHANCED_PACKET, _OLD_PACKET, _SIMPLE_PACKET):
                try:
                    frame = self._packet(block_type, order, body, end - 4, interfaces, last_ns)
                except CaptureError as error:  # this block only: the next one starts at ``end``
                    self.bad_blocks[error.reason] += 1
                else:
                    last_ns = frame.timestamp_ns
                    yield frame
            position = end
        self.position = size

    def _section_order(self, position: int) -> str:
        if self.size < position + 12:
            raise self._broken("truncated_file", "the file ends inside a section header")
        for order in "<>":
            if struct.unpack_from(order + "I", self._map, position + 8)[0] == _BYTE_ORDER_MAGIC:
                return order
        raise self._broken("bad_section", "a section header without its byte-order magic")

    def _interface(self, order: str, body: int, end: int) -> _Interface:
        if body + 8 > end:
            raise self._broken("bad_block_length", "an interface block too short")
        link_type = struct.unpack_from(order + "H", self._map, body)[0]
        ns_per_unit, offset_ns = (1000, 1), 0  # default resolution: microseconds
        for code, value in self._options(order, body + 8, end):
            if code == _OPT_TSRESOL and value:
                exponent = value[0] & 0x7F
                ns_per_unit = (10**9, 2**exponent) if value[0] & 0x80 else (10**9, 10**exponent)
            elif code == _OPT_TSOFFSET and len(value) == 8:
                offset_ns = struct.unpack(order + "q", value)[0] * 10**9
        return _Interface(link_type, ns_per_unit, offset_ns)

    def _packet(
        self,
        block_type: int,
        order: str,
        body: int,
        end: int,
        interfaces: list[_Interface],
        last_ns: int,
    ) -> Frame:
        data = self._map
        if block_type == _SIMPLE_PACKET:  # interface 0, no timestamp: the last one seen
            if body + 4 > end:
                raise self._broken("bad_block_length", "a packet block too short")
            (wire_length,) = struct.unpack_from(order + "I", data, body)
            index, timestamp, start = 0, None, body + 4
            captured = min(wire_length, end - start)
        else:
            if body + 20 > end:
                raise self._broken("bad_block_length", "a packet block too short")
            if block_type == _ENHANCED_PACKET:
                index, high, low, captured, wire_length = struct.unpack_from(
                    order + "IIIII", data, body
                )
            else:  # the obsolete Packet Block: a 16-bit interface id and a drop count
                index, _, high, low, captured, wire_length = struct.unpack_from(
                    order + "HHIIII", data, body
                )
            timestamp, start = high << 32 | low, body + 20
        if index >= len(interfaces):
            raise self._broken("bad_interface", f"a packet on undeclared interface {index}")
        interface = interfaces[index]
        stop = start + captured
        if stop > end:
            raise self._broken("bad_block_length", "a packet longer than its block")
        direction = None
        if block_type != _SIMPLE_PACKET:
            for code, value in self._options(order, stop + -stop % 4, end):
                if code == _OPT_FLAGS and len(value) == 4:
                    direction = _FLAG_DIRECTION.get(struct.unpack(order + "I", value)[0] & 3)
        if timestamp is None:
            timestamp_ns = last_ns
        else:
            numerator, denominator = interface.ns_per_unit
            timestamp_ns = timestamp * numerator // denominator + interface.offset_ns
            if not 0 <= timestamp_ns < MAX_TIMESTAMP_NS:
                raise self._broken("bad_timestamp", f"a packet timestamped {timestamp_ns} ns")
        return Frame(timestamp_ns, interface.link_type, data[start:stop], wire_length, direction)

    def _options(self, order: str, position: int, end: int) -> Iterator[tuple[int, bytes]]:
        """An options list; one that runs past its block ends it (the packet is still good)."""
        data = self._map
        while position + 4 <= end:
            code, length = struct.unpack_from(order + "HH", data, position)
            if code == _OPT_END:
                return
            value_end = position + 4 + length
            if value_end > end:
                return
            yield code, data[position + 4 : value_end]
            position = value_end + -length % 4
