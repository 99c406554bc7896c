"""The ring-buffer reader, on a file laid out as the kernel lays out a BPF ring buffer map."""

from __future__ import annotations

import mmap
import struct
import tempfile

import pytest

from hostcore.probe.ring import BUSY, DISCARD, RingError, RingReader

PAGE = mmap.PAGESIZE
SIZE = PAGE  # the smallest ring: one page


class FakeRing:
    """Consumer page, producer page, then the data area twice (as the kernel maps it)."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the test
        self.file.truncate(2 * PAGE + 2 * SIZE)
        self.producer = 0

    def put(self, payload: bytes, flags: int = 0) -> None:
        record = struct.pack("<II", len(payload) | flags, 0) + payload
        record += bytes(-len(record) % 8)
        for base in (2 * PAGE, 2 * PAGE + SIZE):  # both views of the data area
            for i, byte in enumerate(record):
                self.file.seek(base + (self.producer + i) % SIZE)
                self.file.write(bytes([byte]))
        self.producer += len(record)
        self.file.seek(PAGE)
        self.file.write(struct.pack("<Q", self.producer))
        self.file.flush()

    def consumer(self) -> int:
        self.file.seek(0)
        return int(struct.unpack("<Q", self.file.read(8))[0])


def test_records_in_order_wrapping_around_and_discarded_ones_skipped() -> None:
    ring = FakeRing()
    reader = RingReader(ring.file.fileno(), SIZE)
    ring.put(b"a" * (SIZE - 40))
    ring.put(b"gone", DISCARD)
    assert reader.read() == [b"a" * (SIZE - 40)]
    ring.put(b"wraps around the end of the area")  # starts near the end, ends at the start
    ring.put(b"next")
    assert reader.read() == [b"wraps around the end of the area", b"next"]
    assert ring.consumer() == ring.producer  # the space is given back


def test_a_record_still_being_written_stops_the_read() -> None:
    ring = FakeRing()
    reader = RingReader(ring.file.fileno(), SIZE)
    ring.put(b"first")
    ring.put(b"busy", BUSY)
    ring.put(b"after")
    assert reader.read() == [b"first"]
    assert reader.read() == [] and reader.blocked  # still busy: nothing after it is read


def test_a_record_longer_than_the_ring_is_an_error_not_a_runaway_position() -> None:
    ring = FakeRing()
    reader = RingReader(ring.file.fileno(), SIZE)
    ring.put(b"x")
    ring.file.seek(2 * PAGE)
    ring.file.write((SIZE * 2).to_bytes(4, "little"))  # a corrupt length
    ring.file.flush()
    with pytest.raises(RingError, match="bytes in a"):
        reader.read()
