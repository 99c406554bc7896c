"""DNS answers built by dnspython: an encoder independent of hostcore's parser."""

from __future__ import annotations

import dns.message
import dns.rrset


def answer(question: str, *records: tuple[str, int, str, str], qtype: str = "A") -> bytes:
    """A response to ``question`` whose answer section holds (owner, ttl, type, value) records."""
    query = dns.message.make_query(question, qtype)
    response = dns.message.make_response(query)
    for owner, ttl, rtype, value in records:
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, value))
    return response.to_wire()
