"""Community ID v1 (Corelight's specification, github.com/corelight/community-id-spec):
one hash per flow, the same from either end, so flows join with Zeek, Suricata,
Arkime and Elastic data."""

from __future__ import annotations

import base64
import functools
import hashlib
import socket
import struct

IPPROTO_TCP = 6
SEED = 0  # the specification's default, which every tool above uses unless told otherwise
# Flows kept hashed, so that the events of one connection share one hash: its begins
# (two on loopback) and the end handler's copy of their fields, made from the same
# batch of packets (an end reuses that copy). A few batches' worth: about 1.3 MiB.
IDS_KEPT = 4096

_SEED_BYTES = struct.pack("!H", SEED)
_PORTS = struct.Struct("!HH")


@functools.lru_cache(maxsize=IDS_KEPT)
def community_id(
    src: str, dst: str, src_port: int, dst_port: int, protocol: int = IPPROTO_TCP
) -> str:
    """The flow's Community ID (``1:`` then base64 of a SHA-1), seed 0.

    The endpoints are ordered first (the lower address, then the lower port), so
    both directions of a flow hash alike. Addresses are text, IPv4 or IPv6.
    """
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    low, high = (socket.inet_pton(family, src), src_port), (socket.inet_pton(family, dst), dst_port)
    if low > high:
        low, high = high, low
    digest = hashlib.sha1(
        _SEED_BYTES + low[0] + high[0] + bytes((protocol, 0)) + _PORTS.pack(low[1], high[1])
    ).digest()
    return "1:" + base64.b64encode(digest).decode("ascii")
