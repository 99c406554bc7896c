"""Link headers around the IP packet: the cases the public captures do not all cover."""

from __future__ import annotations

import pytest
from packets import SYN, ipv4, tcp

from hostcore.capture.links import LinkError, ip_offset
from hostcore.packet import Direction

PACKET = ipv4("192.0.2.1", "198.51.100.7", tcp(40001, 443, SYN))
MACS = bytes(12)


@pytest.mark.parametrize(
    ("link_type", "frame", "offset", "direction"),
    [
        (1, MACS + b"\x88\xa8\x00\x0a\x81\x00\x00\x14\x08\x00" + PACKET, 22, None),  # 802.1ad, Q
        (1, MACS + b"\x91\x00\x00\x0a\x08\x00" + PACKET, 18, None),  # old QinQ type
        (1, MACS + b"\x88\x64\x11\x00\x00\x01\x00\x30\x00\x21" + PACKET, 22, None),  # PPPoE
        (0, b"\x02\x00\x00\x00" + PACKET, 4, None),  # BSD loopback, little-endian writer
        (0, b"\x00\x00\x00\x1e" + PACKET, 4, None),  # big-endian writer, macOS AF_INET6
        (108, b"\x00\x00\x00\x02" + PACKET, 4, None),  # OpenBSD loop: network order
        (113, b"\x00\x04" + bytes(12) + b"\x08\x00" + PACKET, 16, Direction.EGRESS),
        (113, b"\x00\x03" + bytes(12) + b"\x08\x00" + PACKET, 16, None),  # to another host
        (276, b"\x08\x00" + bytes(8) + b"\x00" + bytes(9) + PACKET, 20, Direction.INGRESS),
        (228, PACKET, 0, None),
    ],
)
def test_ip_is_found(
    link_type: int, frame: bytes, offset: int, direction: Direction | None
) -> None:
    assert ip_offset(link_type, frame) == (offset, direction)


@pytest.mark.parametrize(
    ("link_type", "frame", "reason"),
    [
        (1, MACS + b"\x08\x06" + bytes(28), "not_ip"),  # ARP
        (1, MACS + b"\x88\x64\x11\x00\x00\x01\x00\x30\xc0\x21" + bytes(20), "not_ip"),  # PPP LCP
        (1, MACS + b"\x81\x00\x00\x0a" * 9 + b"\x08\x00" + PACKET, "too_many_vlan_tags"),
        (1, MACS + b"\x81", "truncated_link"),
        (0, b"\x07\x00\x00\x00" + PACKET, "not_ip"),  # an address family that is not IP
        (239, b"\x02\x00\x00\x00" + b"\x00\x00\x09\x00", "bad_nflog_tlv"),
        (147, PACKET, "unsupported_link_type.147"),
    ],
)
def test_frames_without_ip_say_why(link_type: int, frame: bytes, reason: str) -> None:
    with pytest.raises(LinkError) as raised:
        ip_offset(link_type, frame)
    assert raised.value.reason == reason
