"""One connection for the net_flow handlers' rules: 192.0.2.10:40000 connecting out to
203.0.113.5:443, its flow fields, and its segments as the decoder gives them."""

from __future__ import annotations

import communityid
from packets import ipv4, tcp

from hostcore.decoder import Decoder
from hostcore.packet import Direction, Packet

decode = Decoder().decode

CLIENT, SERVER = ("192.0.2.10", 40000), ("203.0.113.5", 443)

# The flow fields of 192.0.2.10:40000 connecting out to 203.0.113.5:443; its Community ID
# from an independent implementation (the communityid package).
OUTGOING = {
    "conn_direction": "outgoing",
    "src": "192.0.2.10",
    "dst": "203.0.113.5",
    "src_port": 40000,
    "dst_port": 443,
    "src_dns": [],
    "dst_dns": [],
    "community_id": communityid.CommunityID().calc(
        communityid.FlowTuple.make_tcp(CLIENT[0], SERVER[0], CLIENT[1], SERVER[1])
    ),
}


def segment(
    direction: Direction,
    src: tuple[str, int],
    dst: tuple[str, int],
    flags: int,
    seq: int = 7,
    ack: int = 1001,
    ns: int = 0,
) -> Packet:
    return decode(ipv4(src[0], dst[0], tcp(src[1], dst[1], flags, seq=seq, ack=ack)), ns, direction)
