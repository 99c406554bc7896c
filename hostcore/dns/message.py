"""Parse the parts of a DNS answer that name addresses: question, CNAMEs, A and AAAA.

Our own parser rather than a library: it reads only the question and the
answer section (a full parser such as dnspython builds every section and costs
tens of microseconds per message), and every read is bounds-checked so that any
byte string either parses or raises DnsError with a stable reason. A message
that fails anywhere is rejected whole: nothing from it reaches the store.
"""

from __future__ import annotations

import re
import socket
import struct
from typing import NamedTuple

TYPE_A = 1
TYPE_CNAME = 5
TYPE_AAAA = 28
CLASS_IN = 1
MAX_NAME_LENGTH = 255  # RFC 1035 2.3.4, in wire bytes
MAX_POINTERS = 64  # compression pointers followed for one name
MAX_CHAIN = 16  # CNAME steps followed from the question

_HEADER = struct.Struct("!HHHHHH")
_RECORD = struct.Struct("!HHIH")  # type, class, ttl, rdlength (after the owner name)
_PLAIN_NAME = re.compile(rb"[a-z0-9_.-]*\Z")


_Names = dict[int, tuple[str, int]]  # offset -> (name, length in wire bytes)


class DnsError(ValueError):
    """A malformed message; ``reason`` is a stable counter name."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Record(NamedTuple):
    """One A, AAAA or CNAME record of the answer section; ``value`` is an address or a name."""

    owner: str
    type: int
    ttl: int
    value: str


class Answer(NamedTuple):
    question: str
    records: tuple[Record, ...]


class Chain(NamedTuple):
    """Names leading to one address: the question, then each CNAME target in order."""

    names: tuple[str, ...]
    address: str
    ttl: int  # the smallest TTL of the records in the chain, in seconds


def parse(message: bytes) -> Answer | str:
    """The answer in ``message``, or why it names nothing (a response that is fine but empty).

    Raises DnsError when the message is malformed.
    """
    if len(message) < _HEADER.size:
        raise DnsError("short_header")
    _id, flags, questions, answers, _authority, _additional = _HEADER.unpack_from(message)
    if not flags & 0x8000:
        return "not_response"
    if flags & 0x7800:
        return "not_query_opcode"
    if flags & 0x000F:
        return "error_rcode"  # NXDOMAIN, SERVFAIL, REFUSED...
    if questions != 1:
        return "not_one_question"
    if not answers:
        return "no_answer"
    names: _Names = {}
    question, offset = _name(message, _HEADER.size, names)
    offset += 4  # question type and class
    records = []
    for _ in range(answers):
        owner, offset = _name(message, offset, names)
        if offset + _RECORD.size > len(message):
            raise DnsError("truncated_record")
        rtype, rclass, ttl, length = _RECORD.unpack_from(message, offset)
        offset += _RECORD.size
        end = offset + length
        if end > len(message):
            raise DnsError("truncated_record")
        if rclass == CLASS_IN:
            value = _rdata(message, rtype, offset, end, names)
            if value is not None:
                # RFC 2181 8: a TTL with the top bit set means zero.
                records.append(Record(owner, rtype, 0 if ttl & 0x80000000 else ttl, value))
        offset = end
    if all(record.type == TYPE_CNAME for record in records):
        return "no_address_records"  # CNAMEs alone (an AAAA query for an IPv4-only name)
    return Answer(question, tuple(records))


def _rdata(message: bytes, rtype: int, offset: int, end: int, names: _Names) -> str | None:
    if rtype == TYPE_A:
        if end - offset != 4:
            raise DnsError("bad_rdata_length")
        return socket.inet_ntop(socket.AF_INET, message[offset:end])
    if rtype == TYPE_AAAA:
        if end - offset != 16:
            raise DnsError("bad_rdata_length")
        return socket.inet_ntop(socket.AF_INET6, message[offset:end])
    if rtype == TYPE_CNAME:
        target, after = _name(message, offset, names)
        if after != end:
            raise DnsError("bad_rdata_length")
        return target
    return None


def _name(message: bytes, offset: int, names: _Names) -> tuple[str, int]:
    """The name at ``offset`` (lower case, no trailing dot) and the offset after it.

    Each compression pointer must point before everything read so far for this
    name, so pointers cannot loop; their number and the name's length are
    bounded as well.
    ``names`` holds the names already read from this message by their offset:
    pointers to them, the usual case, are not read again.
    """
    labels: list[bytes] = []
    known_suffix = ""  # the text of an already read name that a pointer led to
    wire_length = 1
    after = -1  # offset after the name where it started, once a pointer is followed
    pointers = 0
    position = lowest = offset
    while True:
        if position >= len(message):
            raise DnsError("truncated_name")
        length = message[position]
        if length == 0:
            break
        if length & 0xC0 == 0xC0:
            if position + 1 >= len(message):
                raise DnsError("truncated_name")
            target = (length & 0x3F) << 8 | message[position + 1]
            if target >= lowest:
                raise DnsError("forward_pointer")
            lowest = target
            pointers += 1
            if pointers > MAX_POINTERS:
                raise DnsError("too_many_pointers")
            if after < 0:
                after = position + 2
            known = names.get(target)
            if known is not None:
                wire_length += known[1] - 1
                if wire_length > MAX_NAME_LENGTH:
                    raise DnsError("name_too_long")
                known_suffix = known[0]
                break
            position = target
            continue
        if length & 0xC0:
            raise DnsError("bad_label_type")
        label = message[position + 1 : position + 1 + length]
        if len(label) < length:
            raise DnsError("truncated_name")
        wire_length += length + 1
        if wire_length > MAX_NAME_LENGTH:
            raise DnsError("name_too_long")
        labels.append(label)
        position += length + 1
    text = ".".join(filter(None, (_labels_text(labels), known_suffix)))
    names[offset] = (text, wire_length)
    return text or ".", after if after >= 0 else position + 1


def _labels_text(labels: list[bytes]) -> str:
    """Labels as lower-case text joined by dots; one check for the usual plain name."""
    joined = b".".join(labels).lower()
    if joined.count(b".") == len(labels) - 1 and _PLAIN_NAME.match(joined):
        return joined.decode("ascii")
    # Dots, backslashes, spaces and non-printable bytes as \DDD (RFC 1035 escapes).
    return ".".join(
        "".join(
            chr(byte) if 0x21 <= byte <= 0x7E and byte not in b".\\" else f"\\{byte:03d}"
            for byte in label.lower()
        )
        for label in labels
    )


def chains(answer: Answer) -> list[Chain]:
    """Every address the question leads to, each with the names on its way.

    ``www.shop.test CNAME edge.cdn.test A 127.0.2.2`` gives one chain:
    ``(("www.shop.test", "edge.cdn.test"), "127.0.2.2", smallest TTL)``.
    Records that the question does not lead to are ignored.
    """
    aliases = {r.owner: r for r in answer.records if r.type == TYPE_CNAME}
    names = [answer.question]
    ttl = 0xFFFFFFFF
    while names[-1] in aliases and len(names) <= MAX_CHAIN:
        alias = aliases[names[-1]]
        if alias.value in names:
            break  # a CNAME loop: the names up to it still lead nowhere new
        ttl = min(ttl, alias.ttl)
        names.append(alias.value)
    final = names[-1]
    chain_names = tuple(names)
    return [
        Chain(chain_names, r.value, min(ttl, r.ttl))
        for r in answer.records
        if r.type != TYPE_CNAME and r.owner == final
    ]
