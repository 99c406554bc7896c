"""Read a BPF ring buffer's records straight from its memory map.

bcc hands each record to a Python callback through ctypes, which cost about a
sixth of the agent's time under load (py-spy). The ring is instead mapped once
and drained in a loop, the way libbpf's ring_buffer__consume does it:

- page 0, read-write: the consumer position;
- page 1, read-only: the producer position; then the data area, mapped twice
  in a row so a record that wraps around the end reads as one slice.

Each record is an 8-byte header (length with a busy and a discard bit, page
offset) and the data, padded to 8 bytes. Ordering: the kernel publishes the
producer position and clears a record's busy bit with release stores; on
x86-64 plain loads are not reordered with each other, so reading the producer
position before the records is enough, as it is for the consumer's store.
"""

from __future__ import annotations

import mmap
import platform

BUSY = 1 << 31
DISCARD = 1 << 30
HEADER_SIZE = 8


class RingError(RuntimeError):
    """The ring buffer cannot be read this way here."""


class RingReader:
    """The consumer side of one BPF ring buffer map of ``size`` bytes (a power of two)."""

    def __init__(self, map_fd: int, size: int) -> None:
        if platform.machine() not in ("x86_64", "AMD64"):
            raise RingError(
                "reading the ring buffer directly relies on x86-64 memory ordering; "
                f"this machine is {platform.machine()}"
            )
        page = mmap.PAGESIZE
        if size < page or size & (size - 1):
            raise RingError(f"ring buffer size {size} is not a power-of-two number of pages")
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        try:
            self._producer = mmap.mmap(
                map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
            )
        except OSError:
            self._consumer.close()
            raise
        self._data_start = page
        self._mask = size - 1
        self.blocked = False  # the last read stopped at a record still being written

    def read(self) -> list[bytes]:
        """Every record published since the last call, in order; frees their space."""
        producer = int.from_bytes(self._producer[0:8], "little")
        consumer = int.from_bytes(self._consumer[0:8], "little")
        data, start, mask = self._producer, self._data_start, self._mask
        records = []
        self.blocked = False
        while consumer < producer:
            offset = start + (consumer & mask)
            header = int.from_bytes(data[offset : offset + 4], "little")
            if header & BUSY:
                self.blocked = True  # reserved, not yet submitted: later records wait for it
                break
            length = header & ~(BUSY | DISCARD)
            if length > mask + 1 - HEADER_SIZE:
                raise RingError(f"ring buffer record of {length} bytes in a {mask + 1}-byte ring")
            if not header & DISCARD:
                records.append(data[offset + HEADER_SIZE : offset + HEADER_SIZE + length])
            consumer += (length + HEADER_SIZE + 7) & ~7
        self._consumer[0:8] = consumer.to_bytes(8, "little")
        return records

    def close(self) -> None:
        self._consumer.close()
        self._producer.close()
