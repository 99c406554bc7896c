"""Turn ring-buffer records (struct header in bpf/net_packet_flow_base.c) into Packets."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable

from hostcore.bounded import BoundedCache
from hostcore.decoder import DecodeError, Decoder
from hostcore.packet import Direction, Owner, OwnerSource, Packet, TcpTotals

# struct header: u64 boot_ns, u64 cgroup_id, u64 cookie, u64 connect_ns, struct owner
# (32 bytes), u16 captured, u8 direction, u8 pad[5]
HEADER = struct.Struct("<QQQQ32sHB5x")
# struct owner: u32 pid, u32 tid, u32 uid, u8 how, u8 marks, u16 cpu, char comm[16]
OWNER = struct.Struct("<IIIBxH16s")
# struct totals, after the header when direction has TOTALS_FOLLOW: u64 bytes_acked,
# u64 bytes_received, u32 segs_out, segs_in, total_retrans, srtt_us (<< 3), rtt_min, pad
TOTALS = struct.Struct("<QQIIIII4x")
TOTALS_FOLLOW = 2
_DIRECTIONS = (Direction.INGRESS, Direction.EGRESS)
_SOURCES = {int(source): source for source in OwnerSource}

OWNER_CACHE_LIMIT = 65536  # distinct owners kept decoded


class RecordReader:
    """Turns one run's ring-buffer records into Packets.

    Owners are kept decoded by their raw bytes: a host has few processes making
    connections, and a shared Owner saves decoding the name for every packet.
    """

    def __init__(self) -> None:
        self._decoder = Decoder()
        self._owners: BoundedCache[bytes, Owner | None] = BoundedCache(OWNER_CACHE_LIMIT)

    def owner(self, raw: bytes) -> Owner | None:
        """The owner in a record (struct owner), or None if the probe had none for the socket."""
        try:
            return self._owners[raw]
        except KeyError:
            return self._owners.put(raw, _owner(raw))

    def packets(
        self, records: Iterable[bytes], offset_ns: int, errors: Counter[str]
    ) -> list[Packet]:
        """Decode ``records`` in order; each one that fails adds 1 to ``errors[reason]``."""
        decode, owners = self._decoder.decode, self._owners
        decoded = []
        for record in records:
            if len(record) < HEADER.size:
                errors["short_record"] += 1
                continue
            boot_ns, cgroup_id, cookie, connect_ns, raw_owner, captured, direction = (
                HEADER.unpack_from(record)
            )
            if direction & TOTALS_FOLLOW:
                if len(record) < _DATA_AFTER_TOTALS:
                    errors["short_record"] += 1
                    continue
                totals, data = (
                    _totals(record),
                    record[_DATA_AFTER_TOTALS : _DATA_AFTER_TOTALS + captured],
                )
            else:
                totals, data = None, record[HEADER.size : HEADER.size + captured]
            # The cache itself, not ``self.owner``: a method call per record costs more.
            owner = owners[raw_owner] if raw_owner in owners else self.owner(raw_owner)
            try:
                decoded.append(
                    decode(
                        data,
                        boot_ns + offset_ns,
                        _DIRECTIONS[direction & 1],
                        cgroup_id,
                        cookie,
                        owner,
                        connect_ns + offset_ns if connect_ns else 0,
                        totals,
                    )
                )
            except DecodeError as error:
                errors[error.reason] += 1
        return decoded


_DATA_AFTER_TOTALS = HEADER.size + TOTALS.size


def _totals(record: bytes) -> TcpTotals:
    sent, received, segs_out, segs_in, retransmits, srtt_x8, min_rtt = TOTALS.unpack_from(
        record, HEADER.size
    )
    return TcpTotals(sent, received, segs_out, segs_in, retransmits, srtt_x8 >> 3, min_rtt)


def _owner(raw: bytes) -> Owner | None:
    pid, tid, uid, how, cpu, comm = OWNER.unpack(raw)
    source = _SOURCES.get(how)
    if source is None or source is OwnerSource.FOUND:
        return None  # OWNER_UNKNOWN; FOUND is never set by the kernel
    name = comm.split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
    return Owner(pid, tid, uid, name, source, cpu)
