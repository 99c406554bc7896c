"""Fuzz targets: the three parsers that take bytes from outside, each with what it may raise.

Each target takes one input and returns normally, or raises only its parser's own error
(which callers count). Anything else escaping is a crash. ``fuzz.py`` drives them with
atheris (short in ``make test``, >= 1,000,000 inputs each in ``make fuzz``);
``tests/test_fuzz.py`` replays the seeds and every crasher saved under ``crashers/<target>/``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

from hostcore.capture.files import CaptureError, CaptureFile
from hostcore.capture.links import LinkError, ip_offset
from hostcore.decoder import DecodeError, Decoder
from hostcore.dns.message import Answer, DnsError, chains, parse
from hostcore.packet import Direction
from hostcore.probe import records

decode = Decoder().decode  # one decoder, its address cache, per test module

# Where the capture target writes each input: a file in memory, as the reader maps files.
_CAPTURE_DIR = Path(os.environ.get("HOSTCORE_FUZZ_DIR") or tempfile.gettempdir())


def decoder(data: bytes) -> None:
    """One ring-buffer record (header + packet), and the same bytes as a bare IP packet."""
    errors: Counter[str] = Counter()
    for packet in records.RecordReader().packets([data], 0, errors):
        assert 0 <= packet.src_port <= 0xFFFF and 0 <= packet.dst_port <= 0xFFFF
    assert sum(errors.values()) <= 1
    with contextlib.suppress(DecodeError):
        packet = decode(data, 0, Direction.INGRESS)
        assert packet.src and packet.dst


def dns(data: bytes) -> None:
    """A DNS message, then the chains of names it gives each address."""
    try:
        result = parse(data)
    except DnsError:
        return
    if isinstance(result, Answer):
        for chain in chains(result):
            assert chain.names and chain.address and chain.ttl >= 0


def capture(data: bytes) -> None:
    """A capture file: every frame read, its link header and packet decoded."""
    path = _CAPTURE_DIR / f"hostcore-fuzz-{os.getpid()}.cap"
    path.write_bytes(data)
    try:
        with CaptureFile(path) as capture_file:
            for frame in capture_file:
                with contextlib.suppress(LinkError, DecodeError):
                    offset, _ = ip_offset(frame.link_type, frame.data)
                    decode(frame.data[offset:], frame.timestamp_ns, Direction.INGRESS)
    except CaptureError:
        pass
    finally:
        path.unlink()


def seeds(target: str) -> Iterator[bytes]:
    """Well-formed inputs for ``target``, for the fuzzer to mutate."""
    if target == "capture":
        from tshark_oracle import CORPUS, SMALL_CAPTURES

        for name in SMALL_CAPTURES:
            yield (CORPUS / name).read_bytes()
        return
    from dns_messages import answer

    dns_answer = answer(
        "www.shop.test.",
        ("www.shop.test.", 60, "CNAME", "edge.cdn.test."),
        ("edge.cdn.test.", 30, "A", "127.0.2.2"),
        ("edge.cdn.test.", 30, "AAAA", "fd00::2"),
    )
    if target == "dns":
        yield dns_answer
        return
    from packets import ACK, SYN, extension, fragment, ipv4, ipv6, tcp, udp

    from hostcore.probe.records import HEADER

    syn_ack = ipv4("10.1.2.3", "192.0.2.9", tcp(443, 51000, SYN | ACK, seq=7, ack=4001))
    yield syn_ack
    yield ipv6(
        "fd00::1", "fd00::2", extension(44) + fragment(6, 0, False) + tcp(80, 9, SYN | ACK), 0
    )
    yield ipv4("10.0.0.53", "10.0.0.1", udp(53, 40000, dns_answer), proto=17)
    yield HEADER.pack(1, 2, 3, 0, bytes(32), len(syn_ack), 1) + syn_ack  # a ring-buffer record


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoder": decoder,
    "dns": dns,
    "capture": capture,
}
