"""The decoder shared by the live probe and capture files."""

from __future__ import annotations

import struct
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from packets import ACK, FIN, RST, SYN, extension, fragment, ipv4, ipv6, tcp, udp

from hostcore.decoder import DecodeError, Decoder
from hostcore.packet import Direction, Owner, OwnerSource, Packet, PacketKind
from hostcore.probe import records

decode = Decoder().decode  # one decoder, its address cache, per test module


def test_ipv4_syn_ack() -> None:
    raw = ipv4("10.1.2.3", "192.0.2.9", tcp(443, 51000, SYN | ACK, seq=7, ack=4001))
    packet = decode(raw, 123, Direction.INGRESS)
    assert (packet.src, packet.dst, packet.src_port, packet.dst_port) == (
        "10.1.2.3",
        "192.0.2.9",
        443,
        51000,
    )
    assert (packet.seq, packet.ack, packet.kind) == (7, 4001, PacketKind.TCP_SYN_ACK)
    assert (packet.timestamp_ns, packet.direction) == (123, Direction.INGRESS)


def test_ipv4_options_move_the_tcp_header() -> None:
    options = bytes([1, 1, 1, 0]) + bytes([7, 7, 4]) + bytes(5)  # NOPs, record route, padding
    packet = decode(ipv4("1.1.1.1", "2.2.2.2", tcp(80, 9, SYN | ACK), options), 0, Direction.EGRESS)
    assert (packet.src_port, packet.dst_port) == (80, 9)


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        (SYN | ACK, PacketKind.TCP_SYN_ACK),
        (SYN, PacketKind.TCP_SYN),
        (FIN | ACK, PacketKind.TCP_FIN_RST),
        (RST, PacketKind.TCP_FIN_RST),
        (RST | ACK, PacketKind.TCP_FIN_RST),
        (SYN | ACK | RST, PacketKind.TCP_FIN_RST),
        (ACK, PacketKind.NONE),
    ],
)
def test_kind_from_flags(flags: int, kind: PacketKind) -> None:
    assert decode(ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, flags)), 0, Direction.INGRESS).kind == kind


def test_ipv6_address_text_is_canonical() -> None:
    raw = ipv6("2001:db8:0:0:0:0:0:1", "::ffff:192.0.2.1", tcp(1, 2, SYN | ACK))
    packet = decode(raw, 0, Direction.INGRESS)
    assert (packet.src, packet.dst) == ("2001:db8::1", "::ffff:192.0.2.1")


def test_ipv6_extension_headers_are_walked() -> None:
    chain = extension(43, 1) + extension(44) + fragment(60, more=True) + extension(6, 2)
    raw = ipv6("::1", "::2", tcp(8080, 5555, SYN | ACK, ack=99), next_header=0, extensions=chain)
    packet = decode(raw, 0, Direction.EGRESS)
    assert (packet.src_port, packet.dst_port, packet.ack) == (8080, 5555, 99)


def test_ipv6_authentication_header() -> None:
    ah = bytes([6, 4]) + bytes(22)  # (4 + 2) * 4 = 24 bytes
    packet = decode(ipv6("::1", "::2", tcp(1, 2, SYN | ACK), 51, ah), 0, Direction.INGRESS)
    assert packet.src_port == 1


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"", "empty"),
        (b"\x45" + bytes(10), "truncated_ip"),
        (b"\x75" + bytes(40), "bad_ip_version"),
        (b"\x43" + bytes(40), "bad_ip_header_length"),
        (ipv4("1.1.1.1", "2.2.2.2", b"", bytes(40))[:40], "truncated_ip"),
        (ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN), proto=1), "not_tcp_or_udp"),
        (ipv4("1.1.1.1", "2.2.2.2", udp(53, 9, b"")[:6], proto=17), "truncated_udp"),
        (ipv4("1.1.1.1", "2.2.2.2", b"\0\x35\0\x09\0\x04\0\0", proto=17), "bad_udp_length"),
        (
            ipv4("1.1.1.1", "2.2.2.2", udp(53, 9, b"abcd"), proto=17, total_length=30),
            "bad_udp_length",
        ),
        (ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN), total_length=10), "bad_ip_length"),
        (ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN))[:30], "truncated_tcp"),
        (ipv6("::1", "::2", tcp(1, 2, SYN))[:39], "truncated_ip"),
        (ipv6("::1", "::2", tcp(1, 2, SYN))[:50], "truncated_tcp"),
        (ipv6("::1", "::2", b"", 0, extension(6, 3))[:50], "truncated_ip"),
        (ipv6("::1", "::2", tcp(1, 2, SYN), 44, fragment(6, offset_units=3)), "ip_fragment"),
        (ipv6("::1", "::2", tcp(1, 2, SYN), 59), "not_tcp_or_udp"),
        (
            ipv6("::1", "::2", tcp(1, 2, SYN), 0, extension(0) * 8 + extension(6)),
            "ipv6_extension_chain_too_long",
        ),
    ],
)
def test_malformed_bytes_raise_a_named_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as error:
        decode(raw, 0, Direction.INGRESS)
    assert error.value.reason == reason


def test_ipv4_non_first_fragment_is_not_decoded() -> None:
    raw = bytearray(ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN)))
    raw[6:8] = struct.pack("!H", 0x2000 | 185)
    with pytest.raises(DecodeError, match="ip_fragment"):
        decode(bytes(raw), 0, Direction.INGRESS)


def test_bad_tcp_data_offset() -> None:
    raw = bytearray(ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN)))
    raw[20 + 12] = 4 << 4
    with pytest.raises(DecodeError, match="bad_tcp_header_length"):
        decode(bytes(raw), 0, Direction.INGRESS)


def _record(
    data: bytes,
    boot_ns: int = 5,
    direction: int = 1,
    cgroup_id: int = 0,
    owner: bytes = bytes(32),
    connect_ns: int = 0,
) -> bytes:
    header = records.HEADER.pack(boot_ns, cgroup_id, 99, connect_ns, owner, len(data), direction)
    return header + data


def test_record_carries_its_socket_s_connect_time_on_the_packets_clock() -> None:
    raw = ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN | ACK))
    stamped, unstamped = records.RecordReader().packets(
        [_record(raw, boot_ns=50, connect_ns=7, cgroup_id=3), _record(raw)], 1000, Counter()
    )
    assert (stamped.timestamp_ns, stamped.connect_ns) == (1050, 1007)
    assert (stamped.cgroup_id, stamped.socket_cookie) == (3, 99)
    assert unstamped.connect_ns == 0  # not seen: no offset added to it


def test_record_carries_the_socket_owner() -> None:
    raw = ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN | ACK))
    owner = records.OWNER.pack(1234, 1240, 1000, 2, 1, b"curl\0garbage\0\0\0\0")
    known, unknown = records.RecordReader().packets(
        [_record(raw, owner=owner), _record(raw)], 0, Counter()
    )
    assert known.owner == Owner(1234, 1240, 1000, "curl", OwnerSource.CONNECTED, cpu=1)
    assert (known.socket_cookie, unknown.owner) == (99, None)


def test_udp_from_port_53_is_a_dns_answer_with_its_payload() -> None:
    raw = ipv6("::1", "::2", udp(53, 40000, b"answer"), next_header=17)
    (packet,) = records.RecordReader().packets([_record(raw, cgroup_id=77)], 0, Counter())
    assert (packet.kind, packet.protocol, packet.cgroup_id) == (PacketKind.DNS_ANSWER, 17, 77)
    assert (packet.payload, packet.payload_size) == (b"answer", 6)


def test_decoded_packets_have_every_field() -> None:
    """The decoder builds Packets as plain tuples: a field added to Packet must be filled."""
    for raw in (
        ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN)),
        ipv4("1.1.1.1", "2.2.2.2", udp(1, 2, b""), proto=17),
    ):
        packet = decode(raw, 0, Direction.INGRESS)
        assert len(packet) == len(Packet._fields)
        assert packet.payload_size == 0


def test_other_udp_is_decoded_but_of_no_kind() -> None:
    packet = decode(ipv4("1.1.1.1", "2.2.2.2", udp(5353, 53, b"query"), proto=17), 0, 0)
    assert (packet.kind, packet.payload) == (PacketKind.NONE, b"query")


@pytest.mark.parametrize(
    ("flags", "kind"),
    [
        (ACK, PacketKind.DNS_ANSWER),
        (FIN | ACK, PacketKind.DNS_ANSWER | PacketKind.TCP_FIN_RST),
    ],
)
def test_tcp_data_from_port_53_is_a_dns_answer(flags: int, kind: PacketKind) -> None:
    packet = decode(ipv4("1.1.1.1", "2.2.2.2", tcp(53, 2, flags) + b"\0\2ab"), 0, 0)
    assert (packet.kind, packet.payload, packet.payload_size) == (kind, b"\0\2ab", 4)


def test_tcp_from_port_53_without_data_keeps_its_flag_kind() -> None:
    packet = decode(ipv4("1.1.1.1", "2.2.2.2", tcp(53, 2, SYN | ACK)), 0, 0)
    assert (packet.kind, packet.payload, packet.payload_size) == (PacketKind.TCP_SYN_ACK, b"", 0)


def test_payload_beyond_the_capture_shows_as_a_larger_payload_size() -> None:
    raw = ipv4("1.1.1.1", "2.2.2.2", udp(53, 2, bytes(600)), proto=17)
    packet = decode(raw[:512], 0, 0)
    assert (len(packet.payload), packet.payload_size) == (512 - 28, 600)


def test_records_are_decoded_in_order_and_failures_counted() -> None:
    good = ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN | ACK))
    batch = [_record(good, 10), b"\x00" * 5, _record(b"\x60"), _record(good, 20, 0)]
    errors: Counter[str] = Counter()
    packets = records.RecordReader().packets(batch, offset_ns=1000, errors=errors)
    assert [(p.timestamp_ns, p.direction) for p in packets] == [
        (1010, Direction.EGRESS),
        (1020, Direction.INGRESS),
    ]
    assert errors == Counter({"short_record": 1, "truncated_ip": 1})


def test_record_captured_length_bounds_the_packet() -> None:
    raw = ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN | ACK))
    record = records.HEADER.pack(1, 0, 0, 0, bytes(32), 30, 0) + raw + bytes(200)
    errors: Counter[str] = Counter()
    assert records.RecordReader().packets([record], 0, errors) == []
    assert errors == Counter({"truncated_tcp": 1})


@pytest.mark.parametrize(
    "raw",
    [
        # IPv4: more fragments follow, and this one ends inside the TCP header
        ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN | ACK)[:8], total_length=28)[:6]
        + b"\x20\x00"
        + ipv4("1.1.1.1", "2.2.2.2", tcp(1, 2, SYN | ACK)[:8], total_length=28)[8:],
        # IPv6: a DNS answer whose UDP length runs past this first fragment
        ipv6("::1", "::2", udp(53, 9, bytes(100))[:40], 44, fragment(17, more=True)),
    ],
)
def test_a_first_fragment_cut_inside_its_transport_is_a_fragment(raw: bytes) -> None:
    with pytest.raises(DecodeError, match="ip_fragment_incomplete"):
        decode(raw, 0, Direction.INGRESS)


@settings(max_examples=500)
@given(
    header=st.binary(min_size=20, max_size=20),
    tcp_header=st.binary(min_size=20, max_size=60),
    payload=st.binary(max_size=40),
    total=st.sampled_from(["exact", "zero", "random"]),
    total_value=st.integers(1, 0xFFFF - 4),  # 0 is "zero"
)
def test_plain_ipv4_tcp_decodes_as_the_same_segment_with_ip_options(
    header: bytes, tcp_header: bytes, payload: bytes, total: str, total_value: int
) -> None:
    """IPv4 without options and TCP take a shorter way through the decoder; the same
    segment behind a 4-byte option (NOPs) takes the long one: both must agree."""

    def packet(options: bytes) -> bytes:
        length = 20 + len(options) + len(tcp_header) + len(payload)
        sized = {"exact": length, "zero": 0, "random": total_value + len(options)}[total]
        ip = bytes([0x45 + len(options) // 4, header[1]]) + (sized & 0xFFFF).to_bytes(2, "big")
        ip += header[4:9] + bytes([6]) + header[10:]
        return ip + options + tcp_header + payload

    def outcome(data: bytes) -> object:
        try:
            decoded = decode(data, 1, Direction.EGRESS)
        except DecodeError as error:
            return error.reason
        return decoded

    assert outcome(packet(b"")) == outcome(packet(b"\x01" * 4))
