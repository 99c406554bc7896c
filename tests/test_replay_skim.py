"""The skim of pcap records (hostcore/capture/skim.py) against the full path it stands in for.

pcapng files are never skimmed: the same frames in a pcap and a pcapng file
must give the same events and the same totals, whatever the frames' shapes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from captures import ethernet, pcap, pcapng_interface, pcapng_packet, pcapng_section
from dns_messages import answer
from packets import ACK, FIN, RST, SYN, fragment, ipv4, ipv6, tcp, udp

from hostcore import cli
from hostcore.capture.files import CaptureFile
from hostcore.packet import PacketKind, kinds_wanted

T0 = 1_700_000_000_000_000_000
CLIENT, SERVER = "10.0.0.2", "198.51.100.7"
ETHERNET, LINUX_SLL, RAW_IP = 1, 113, 101


def _segment(
    flags: int, *, back: bool = False, payload: bytes = b"", options: bytes = b""
) -> bytes:
    ports = (443, 40001) if back else (40001, 443)
    ends = (SERVER, CLIENT) if back else (CLIENT, SERVER)
    return ipv4(*ends, tcp(*ports, flags, seq=7, ack=8) + payload, options=options)


def _packets() -> Iterator[bytes]:
    """IP packets of every shape the skim must skip or must leave to the full path."""
    name = answer("www.example.", ("www.example.", 300, "A", SERVER))
    yield ipv4("10.0.0.53", CLIENT, udp(53, 5353, name), proto=17)  # a DNS answer
    yield ipv4(CLIENT, "10.0.0.53", udp(5353, 53, b"\x00" * 12), proto=17)  # a question
    for flags in (SYN, SYN | ACK, ACK, ACK | 0x08, FIN | ACK, RST, RST | ACK, SYN | RST, 0):
        yield _segment(flags)
        yield _segment(flags, back=True, payload=b"x" * 30)
    yield ipv4(SERVER, CLIENT, tcp(53, 40001, ACK) + b"\x00\x0c" + bytes(12))  # DNS over TCP
    yield _segment(SYN | ACK, back=True, options=b"\x01\x01\x01\x00")  # IP options
    yield _segment(ACK, options=b"\x01\x01\x01\x00")
    bad_offset = bytearray(_segment(ACK))
    bad_offset[32] = 4 << 4  # a TCP header "shorter" than 20 bytes
    yield bytes(bad_offset)
    first = bytearray(_segment(SYN | ACK, back=True, payload=bytes(40)))
    first[6:8] = b"\x20\x00"  # a first fragment (more follow)
    yield bytes(first)
    later = bytearray(first)
    later[6:8] = b"\x00\x10"  # a later one: no TCP header
    yield bytes(later)
    yield ipv4(CLIENT, SERVER, b"\x08\x00" + bytes(30), proto=1)  # ICMP
    yield _segment(ACK)[:30]  # cut in the TCP header (its length says more)
    yield ipv6("2001:db8::2", "2001:db8::7", tcp(40001, 443, ACK) + bytes(10))
    yield ipv6("2001:db8::7", "2001:db8::2", tcp(443, 40001, SYN | ACK))
    frag6 = fragment(6, 0, more=False) + tcp(443, 40001, SYN | ACK)
    yield ipv6("2001:db8::7", "2001:db8::2", frag6, next_header=44)
    yield ipv4(CLIENT, SERVER, ipv6("2001:db8::2", "2001:db8::7", tcp(1, 2, ACK)), proto=41)


def _frames(link_type: int) -> list[bytes]:
    packets = list(_packets())
    if link_type == RAW_IP:
        return packets
    if link_type == LINUX_SLL:  # packet type 4, "from us" (as no address says); the EtherType
        return [b"\x00\x04" + bytes(12) + ethernet(p)[12:14] + p for p in packets]
    frames = [ethernet(p) for p in packets]
    frames.append(bytes(12) + b"\x08\x06" + bytes(28))  # ARP
    frames.append(bytes(12) + b"\x81\x00\x00\x0a" + ethernet(_segment(ACK))[12:])  # 802.1Q
    frames.append(ethernet(_segment(ACK, back=True)) + bytes(6))  # padded to 60 bytes
    return frames


def _records(link_type: int) -> list[tuple[int, bytes]]:
    return [(T0 + n * 1000, frame) for n, frame in enumerate(_frames(link_type) * 3)]


def _write_pcap(path: Path, link_type: int, order: str) -> Path:
    with path.open("wb") as out:
        pcap(out, _records(link_type), link_type=link_type, order=order, snaplen=65535)
    return path


def _write_pcapng(path: Path, link_type: int) -> Path:
    blocks = [pcapng_section(), pcapng_interface(link_type, tsresol=9)]
    blocks += [pcapng_packet(0, ts, frame) for ts, frame in _records(link_type)]
    path.write_bytes(b"".join(blocks))
    return path


def _replayed(
    path: Path, events: str, capsys: pytest.CaptureFixture[str]
) -> tuple[str, list[dict[str, Any]]]:
    out = path.with_name(path.name + ".events")
    status = cli.main(["replay", str(path), "--events", events, "--sink", f"file:path={out}"])
    assert status == 0
    totals = capsys.readouterr().err.split("replayed ", 1)[1]
    with out.open("rb") as stream:
        return totals, list(msgpack.Unpacker(stream, raw=False))


@pytest.mark.parametrize("events", ["net_flow_tcp_begin", "flows"])
@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("link_type", [ETHERNET, LINUX_SLL, RAW_IP])
def test_a_skimmed_pcap_replays_as_its_frames_in_pcapng_do(
    link_type: int, order: str, events: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skimmed = _replayed(_write_pcap(tmp_path / "a.pcap", link_type, order), events, capsys)
    whole = _replayed(_write_pcapng(tmp_path / "a.pcapng", link_type), events, capsys)
    assert skimmed == whole
    assert "not_wanted" in skimmed[0], skimmed[0]
    assert any(event["name"] == "net_flow_tcp_begin" for event in skimmed[1])


@pytest.mark.parametrize("link_type", [ETHERNET, LINUX_SLL, RAW_IP])
def test_plain_segments_of_kinds_not_wanted_get_no_frame(link_type: int, tmp_path: Path) -> None:
    wanted = kinds_wanted(PacketKind.TCP_SYN_ACK | PacketKind.DNS_ANSWER)
    plain = [frame for frame in _frames(link_type) if _is_plain_unwanted(frame, link_type)]
    with CaptureFile(_write_pcap(tmp_path / "a.pcap", link_type, "<")) as capture:
        chunks = list(capture.chunks(wanted))
    assert sum(chunk.skimmed for chunk in chunks) == 3 * len(plain) > 0
    assert sum(chunk.records for chunk in chunks) == 3 * len(_frames(link_type))
    kept = [frame.data for chunk in chunks for frame in chunk.frames]
    assert not set(kept) & set(plain)


def _is_plain_unwanted(frame: bytes, link_type: int) -> bool:
    """Plain IPv4 TCP (not from port 53) of a kind other than SYN+ACK, or UDP not from 53."""
    offset = {ETHERNET: 14, LINUX_SLL: 16, RAW_IP: 0}[link_type]
    ip = frame[offset:]
    if offset and frame[offset - 2 : offset] != b"\x08\x00":
        return False
    if len(ip) < 40 or ip[0] != 0x45 or struct.unpack("!H", ip[6:8])[0] & 0x3FFF:
        return False
    if ip[20:22] == b"\x00\x35":
        return False
    if ip[9] == 17:
        return True
    return ip[9] == 6 and ip[33] & (SYN | ACK | RST) != SYN | ACK
