"""Fuzz targets: the three parsers that take bytes from outside, each with what it may raise.

Each target takes one input and returns normally, or raises only its parser's own error
(which callers count). Anything else escaping is a crash. ``fuzz.py`` drives them with
atheris (short in ``make test``, >= 1,000,000 inputs each in ``make fuzz``);
``tests/test_fuzz.py`` replays every crasher saved under ``crashers/<target>/``.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from hostcore import records
from hostcore.capture.files import CaptureError, CaptureFile
from hostcore.capture.links import LinkError, ip_offset
from hostcore.decoder import DecodeError, decode
from hostcore.dns.message import Answer, DnsError, chains, parse
from hostcore.packet import Direction

# Where the capture target writes each input: a file in memory, as the reader maps files.
_CAPTURE_DIR = Path(os.environ.get("HOSTCORE_FUZZ_DIR") or tempfile.gettempdir())


def decoder(data: bytes) -> None:
    """One ring-buffer record (header + packet), and the same bytes as a bare IP packet."""
    errors: Counter[str] = Counter()
    for packet in records.packets([data], 0, errors):
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


TARGETS: dict[str, Callable[[bytes], None]] = {
    "decoder": decoder,
    "dns": dns,
    "capture": capture,
}
