"""Turn ring-buffer records (the struct in bpf/net_packet_flow_base.c) into Packets."""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Iterable

from hostcore.decoder import DecodeError, decode
from hostcore.packet import Direction, Packet

# struct header in bpf/net_packet_flow_base.c:
# u64 boot_ns, u64 cgroup_id, u16 captured, u8 direction, u8 pad[5]
HEADER = struct.Struct("<QQHB5x")
_DIRECTIONS = (Direction.INGRESS, Direction.EGRESS)


def packets(records: Iterable[bytes], offset_ns: int, errors: Counter[str]) -> list[Packet]:
    """Decode ``records`` in order; each one that fails adds 1 to ``errors[reason]``."""
    decoded = []
    for record in records:
        if len(record) < HEADER.size:
            errors["short_record"] += 1
            continue
        boot_ns, cgroup_id, captured, direction = HEADER.unpack_from(record)
        data = record[HEADER.size : HEADER.size + captured]
        try:
            timestamp_ns = boot_ns + offset_ns
            decoded.append(decode(data, timestamp_ns, _DIRECTIONS[direction & 1], cgroup_id))
        except DecodeError as error:
            errors[error.reason] += 1
    return decoded
