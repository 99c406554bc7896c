"""The DNS answer parser, against messages dnspython encodes, and against garbage."""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import struct

import pytest
from dns_messages import answer
from hypothesis import given, settings
from hypothesis import strategies as st

from hostcore.dns.message import (
    TYPE_A,
    TYPE_AAAA,
    Answer,
    Chain,
    DnsError,
    Record,
    chains,
    parse,
)


def _parsed(message: bytes) -> Answer:
    result = parse(message)
    assert isinstance(result, Answer), result
    return result


def test_cname_chain_gives_question_then_each_target() -> None:
    message = answer(
        "WWW.Shop.test.",
        ("www.shop.test.", 60, "CNAME", "mid.shop.test."),
        ("mid.shop.test.", 300, "CNAME", "edge.cdn.test."),
        ("edge.cdn.test.", 30, "A", "127.0.2.2"),
        ("edge.cdn.test.", 300, "A", "127.0.2.3"),
    )
    names = ("www.shop.test", "mid.shop.test", "edge.cdn.test")
    assert chains(_parsed(message)) == [
        Chain(names, "127.0.2.2", 30),
        Chain(names, "127.0.2.3", 60),
    ]


def test_aaaa_record() -> None:
    message = answer("six.test.", ("six.test.", 5, "AAAA", "fd00:0::2"), qtype="AAAA")
    assert _parsed(message) == Answer("six.test", (Record("six.test", TYPE_AAAA, 5, "fd00::2"),))


def test_records_the_question_does_not_lead_to_are_ignored() -> None:
    message = answer(
        "a.test.",
        ("a.test.", 10, "A", "10.0.0.1"),
        ("other.test.", 10, "A", "10.0.0.2"),
        ("other.test.", 10, "MX", "10 mail.test."),
    )
    assert chains(_parsed(message)) == [Chain(("a.test",), "10.0.0.1", 10)]


def test_cname_loop_leads_nowhere() -> None:
    message = answer(
        "a.test.",
        ("a.test.", 10, "CNAME", "b.test."),
        ("b.test.", 10, "CNAME", "a.test."),
        ("a.test.", 10, "A", "10.0.0.1"),  # not where the chain ends: a loop has no end
    )
    assert chains(_parsed(message)) == []


def test_ttl_with_the_top_bit_set_means_zero() -> None:
    message = bytearray(answer("a.test.", ("a.test.", 10, "A", "10.0.0.1")))
    ttl_at = len(message) - 4 - 2 - 4  # ttl, rdlength, address
    message[ttl_at : ttl_at + 4] = struct.pack("!I", 0x80000001)
    assert _parsed(bytes(message)).records[0].ttl == 0


def test_odd_bytes_in_labels_are_escaped_like_dig() -> None:
    message = answer("a\\.b\\032c\\255.test.", ("a\\.b\\032c\\255.test.", 1, "A", "10.0.0.1"))
    assert _parsed(message).question == "a\\046b\\032c\\255.test"


@pytest.mark.parametrize(
    ("flags", "answers", "why"),
    [
        (0x0100, 1, "not_response"),
        (0x8183, 0, "error_rcode"),  # NXDOMAIN
        (0x8180, 0, "no_answer"),
        (0xA980, 1, "not_query_opcode"),  # opcode 5, UPDATE
    ],
)
def test_answers_that_name_nothing(flags: int, answers: int, why: str) -> None:
    header = struct.pack("!HHHHHH", 1, flags, 1, answers, 0, 0)
    assert parse(header + b"\x01a\x00\x00\x01\x00\x01") == why


def test_answer_with_only_other_types_names_nothing() -> None:
    assert parse(answer("a.test.", ("a.test.", 1, "TXT", '"x"'))) == "no_address_records"
    cname_only = answer("a.test.", ("a.test.", 1, "CNAME", "b.test."), qtype="AAAA")
    assert parse(cname_only) == "no_address_records"


def _header(answers: int = 1) -> bytes:
    return struct.pack("!HHHHHH", 7, 0x8180, 1, answers, 0, 0)


QUESTION = b"\x01a\x04test\x00\x00\x01\x00\x01"  # a.test A IN, at offset 12
A_RECORD = b"\xc0\x0c" + struct.pack("!HHIH", TYPE_A, 1, 60, 4) + bytes([10, 0, 0, 1])


@pytest.mark.parametrize(
    ("message", "reason"),
    [
        (b"\x00" * 11, "short_header"),
        (_header() + b"\xc0\x0c" + QUESTION[2:] + A_RECORD, "forward_pointer"),  # points at itself
        (_header() + QUESTION + b"\xc0\x21" + A_RECORD[2:], "forward_pointer"),  # points ahead
        (_header() + b"\x40" + QUESTION[1:] + A_RECORD, "bad_label_type"),  # label length 64
        (_header() + (b"\x3f" + b"x" * 63) * 4 + b"\x00\x00\x01\x00\x01", "name_too_long"),
        (_header(answers=3) + QUESTION + A_RECORD, "truncated_name"),  # counts beyond the data
        (_header() + QUESTION + A_RECORD[:-1], "truncated_record"),
        (_header() + QUESTION + A_RECORD[:8], "truncated_record"),
        (
            _header() + QUESTION + A_RECORD[:-4].replace(b"\x00\x04", b"\x00\x03") + b"abc",
            "bad_rdata_length",
        ),
        (_header() + b"\x05ab", "truncated_name"),
    ],
)
def test_malformed_messages_raise_a_named_reason(message: bytes, reason: str) -> None:
    with pytest.raises(DnsError) as error:
        parse(message)
    assert error.value.reason == reason


def test_pointer_back_into_the_same_name_cannot_loop() -> None:
    body = QUESTION[:-5] + b"\x01b\xc0\x12" + QUESTION[-4:]  # a.test.b -> "test.b" again
    with pytest.raises(DnsError, match="forward_pointer"):
        parse(_header() + body + A_RECORD)


def test_mutual_compression_pointers_cannot_loop() -> None:
    # Two names pointing at each other: one of the two pointers must point forward.
    body = b"\xc0\x0e\xc0\x0c" + QUESTION[-4:]
    with pytest.raises(DnsError, match="forward_pointer"):
        parse(_header() + body + A_RECORD)


def _text(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    # The decoder writes packet addresses with inet_ntop (RFC 5952, ::ffff:1.2.3.4 mixed
    # notation); names must be stored under the same text to be found.
    family = socket.AF_INET if address.version == 4 else socket.AF_INET6
    return socket.inet_ntop(family, address.packed)


_LABEL = st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20)
_NAME = st.lists(_LABEL, min_size=1, max_size=4).map(".".join)


@settings(max_examples=300, deadline=None)
@given(
    question=_NAME,
    aliases=st.lists(_NAME, max_size=4, unique=True),
    addresses=st.lists(st.ip_addresses(), min_size=1, max_size=4, unique=True),
    ttls=st.lists(st.integers(0, 2**31 - 1), min_size=9, max_size=9),
)
def test_parser_agrees_with_dnspython(
    question: str,
    aliases: list[str],
    addresses: list[ipaddress.IPv4Address | ipaddress.IPv6Address],
    ttls: list[int],
) -> None:
    aliases = [a for a in aliases if a != question]
    path = [question, *aliases]
    records = [
        (owner + ".", ttl, "CNAME", target + ".")
        for owner, target, ttl in zip(path, path[1:], ttls, strict=False)
    ]
    records += [
        (path[-1] + ".", ttl, "A" if address.version == 4 else "AAAA", str(address))
        for address, ttl in zip(addresses, ttls[4 : 4 + len(addresses)], strict=True)
    ]
    chain_ttl = min(ttls[: len(path) - 1], default=2**32)
    expected = [
        Chain(tuple(path), _text(address), min(chain_ttl, ttl))
        for address, ttl in zip(addresses, ttls[4 : 4 + len(addresses)], strict=True)
    ]
    assert chains(_parsed(answer(question + ".", *records))) == expected


@settings(max_examples=3000, deadline=None)
@given(st.integers(0, 0xFFFF), st.integers(0, 8), st.binary(max_size=600))
def test_any_body_behind_an_answer_header_parses_or_raises_dns_error(
    flags: int, answers: int, body: bytes
) -> None:
    """A response header with one question, so the parser reads on into the garbage."""
    header = struct.pack("!HHHHHH", 7, 0x8000 | flags & 0x0780, 1, answers, 0, 0)
    with contextlib.suppress(DnsError):
        parse(header + body)


VALID = answer(
    "www.shop.test.",
    ("www.shop.test.", 60, "CNAME", "edge.cdn.test."),
    ("edge.cdn.test.", 30, "A", "127.0.2.2"),
    ("edge.cdn.test.", 30, "AAAA", "fd00::2"),
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=6))
def test_mutated_answers_parse_or_raise_dns_error(changes: list[tuple[int, int]]) -> None:
    message = bytearray(VALID)
    for position, value in changes:
        message[position] = value
    try:
        result = parse(bytes(message))
    except DnsError:
        return
    if isinstance(result, Answer):
        for chain in chains(result):
            assert chain.names and chain.address
            assert all(len(name) <= 4 * 255 for name in chain.names)
