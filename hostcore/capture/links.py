"""Find the IP header inside a captured frame, by the frame's link type.

``ip_offset`` returns where the IP header starts and the direction the link
header records (Linux cooked captures say whether the packet was outgoing).
Anything else raises LinkError with a stable reason: ``not_ip`` for frames that
carry no IP packet (ARP, LLDP, 802.11 management...), which are skipped, not
lost; the other reasons are frames that may have held one.
"""

from __future__ import annotations

from collections.abc import Callable

from hostcore.packet import Direction

ETHERTYPE_IPV4, ETHERTYPE_IPV6 = 0x0800, 0x86DD
_IP = (ETHERTYPE_IPV4, ETHERTYPE_IPV6)
_VLAN = (0x8100, 0x88A8, 0x9100, 0x9200)  # 802.1Q, 802.1ad and the older QinQ types
_PPPOE_SESSION = 0x8864
_PPP_IP = (0x0021, 0x0057)
MAX_VLAN_TAGS = 8
# Linux cooked capture packet types: to us, broadcast, multicast, to another host, from us.
_SLL_DIRECTION = {
    0: Direction.INGRESS,
    1: Direction.INGRESS,
    2: Direction.INGRESS,
    4: Direction.EGRESS,
}
# BSD loopback: the address family in the capturing host's byte order; IPv6 varies by OS.
_NULL_FAMILIES = {2, 10, 23, 24, 28, 30}
_NFLOG_PAYLOAD = 9
IPPROTO_IPV6 = 41  # 6in4 (SIT) tunnels: IPv6 inside IPv4

LinkResult = tuple[int, Direction | None]


class LinkError(ValueError):
    """A frame without a usable IP packet; ``reason`` is a stable counter name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _need(data: bytes, length: int) -> None:
    if len(data) < length:
        raise LinkError("truncated_link")


def _after_ethertype(data: bytes, offset: int, payload: int) -> int:
    """The IP header's offset, given where the EtherType field and what it types start."""
    for _ in range(MAX_VLAN_TAGS + 1):
        _need(data, offset + 2)
        ethertype = data[offset] << 8 | data[offset + 1]
        if ethertype in _IP:
            return payload
        if ethertype in _VLAN:  # a tag: its TCI, then the next EtherType
            offset, payload = payload + 2, payload + 4
        elif ethertype == _PPPOE_SESSION:  # the PPPoE header (6 bytes), then the PPP protocol
            _need(data, payload + 8)
            if (data[payload + 6] << 8 | data[payload + 7]) not in _PPP_IP:
                raise LinkError("not_ip")
            return payload + 8
        else:
            raise LinkError("not_ip")
    raise LinkError("too_many_vlan_tags")


def _ethernet(data: bytes) -> LinkResult:
    return _after_ethertype(data, 12, 14), None


def _linux_sll(data: bytes) -> LinkResult:
    _need(data, 16)
    return _after_ethertype(data, 14, 16), _SLL_DIRECTION.get(data[0] << 8 | data[1])


def _linux_sll2(data: bytes) -> LinkResult:
    _need(data, 20)
    return _after_ethertype(data, 0, 20), _SLL_DIRECTION.get(data[10])


def _raw(data: bytes) -> LinkResult:
    return 0, None


def _null(data: bytes, byteorder: str | None = None) -> LinkResult:
    _need(data, 4)
    if byteorder is None:  # the writer's byte order: the family is small either way
        byteorder = "little" if data[0] else "big"
    if int.from_bytes(data[:4], byteorder) not in _NULL_FAMILIES:  # type: ignore[arg-type]
        raise LinkError("not_ip")
    return 4, None


def _loop(data: bytes) -> LinkResult:
    return _null(data, "big")


def _nflog(data: bytes) -> LinkResult:
    """NFLOG: a 4-byte header, then TLVs (length in host order, padded to 4); 9 is the packet."""
    offset = 4
    while offset + 4 <= len(data):
        length = int.from_bytes(data[offset : offset + 2], "little")
        kind = int.from_bytes(data[offset + 2 : offset + 4], "little")
        if length < 4:
            raise LinkError("bad_nflog_tlv")
        if kind == _NFLOG_PAYLOAD:
            return offset + 4, None
        offset += length + -length % 4
    raise LinkError("truncated_link")


def _ieee80211(data: bytes, offset: int = 0) -> LinkResult:
    """802.11 data frames with an LLC/SNAP header; management, control and encrypted: not IP."""
    _need(data, offset + 24)
    control, flags = data[offset], data[offset + 1]
    if (control >> 2) & 3 != 2 or control & 0x40 or flags & 0x40:  # not data, no body, protected
        raise LinkError("not_ip")
    header = 24
    if flags & 3 == 3:  # to and from the distribution system: a fourth address
        header += 6
    if control & 0x80:  # QoS data: a QoS control field, and HT control if ordered
        header += 2 + (4 if flags & 0x80 else 0)
    snap = offset + header
    _need(data, snap + 8)
    if data[snap : snap + 6] != b"\xaa\xaa\x03\x00\x00\x00":
        raise LinkError("not_ip")
    return _after_ethertype(data, snap + 6, snap + 8), None


def _radiotap(data: bytes) -> LinkResult:
    _need(data, 4)
    return _ieee80211(data, int.from_bytes(data[2:4], "little"))


LINK_TYPES: dict[int, Callable[[bytes], LinkResult]] = {
    0: _null,
    1: _ethernet,
    12: _raw,
    14: _raw,  # OpenBSD's number for raw IP
    101: _raw,
    105: _ieee80211,
    108: _loop,
    113: _linux_sll,
    127: _radiotap,
    228: _raw,  # IPv4 only
    229: _raw,  # IPv6 only
    239: _nflog,
    276: _linux_sll2,
}


def ip_offset(link_type: int, data: bytes) -> LinkResult:
    """Where the IP header starts in ``data``, and the direction the link header records."""
    parse = LINK_TYPES.get(link_type)
    if parse is None:
        raise LinkError(f"unsupported_link_type.{link_type}")
    offset, direction = parse(data)
    if (
        len(data) > offset + 20
        and data[offset] >> 4 == 4
        and data[offset + 9] == IPPROTO_IPV6
        and not (data[offset + 6] << 8 | data[offset + 7]) & 0x3FFF  # whole, not a fragment
    ):
        offset += (data[offset] & 0x0F) * 4  # 6in4: the inner IPv6 packet carries the flow
    return offset, direction
