"""hostcore replay: capture formats, direction, bad files, totals and progress.

Where a file's expectation can come from tshark it does (tests/tshark_oracle.py);
the files are written here (tests/captures.py) or by tcpdump around real traffic.
"""

from __future__ import annotations

import os
import pty
import re
import signal
import subprocess
from collections import Counter
from pathlib import Path

import msgpack
import pytest
import tshark_oracle
from capture_tools import replay, tcpdump
from captures import (
    INBOUND,
    OUTBOUND,
    ethernet,
    pcap,
    pcapng_interface,
    pcapng_packet,
    pcapng_section,
    pcapng_simple_packet,
)
from packets import ACK, FIN, SYN, ipv4, ipv6, tcp
from runs import HOSTCORE
from traffic import curl, http_server
from tshark_oracle import CORPUS

from hostcore import cli

T0 = 1_700_000_000_123_456_789
RAW_IP = 101


def _handshake(client: str, server: str, port: int, isn: int) -> list[bytes]:
    """SYN and SYN+ACK of one connection as raw IP packets."""
    build = ipv6 if ":" in client else ipv4
    return [
        build(client, server, tcp(port, 443, SYN, seq=isn)),
        build(server, client, tcp(443, port, SYN | ACK, seq=9, ack=isn + 1)),
    ]


def _handshakes(path: Path, count: int) -> Path:
    """A pcap of ``count`` handshakes (SYN, SYN+ACK), each from its own client port."""
    with path.open("wb") as out:
        pcap(
            out,
            (
                (T0 + n, ethernet(packet))
                for n in range(count)
                for packet in _handshake("192.0.2.1", "198.51.100.7", 1024 + n % 60000, n)
            ),
        )
    return path


def _begins(events: list[dict]) -> list[tuple[str, str, int]]:
    return sorted(
        (e["data"]["conn_direction"], e["data"]["src"], e["data"]["src_port"])
        for e in events
        if e["name"] == "net_flow_tcp_begin"
    )


@pytest.mark.parametrize("order", ["<", ">"])
@pytest.mark.parametrize("nanoseconds", [False, True])
def test_pcap_byte_orders_and_resolutions(order: str, nanoseconds: bool, tmp_path: Path) -> None:
    path = tmp_path / "flows.pcap"
    packets = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    packets += _handshake("2001:db8::1", "2001:db8::7", 40002, 2000)
    with path.open("wb") as out:
        records = [(T0 + n * 1001, ethernet(packet)) for n, packet in enumerate(packets)]
        pcap(out, records, order=order, nanoseconds=nanoseconds)
    events = replay(tmp_path, str(path))
    assert len([e for e in events if e["name"] == "net_flow_tcp_begin"]) == 2
    tshark_oracle.assert_matches(path, events, set())


def test_pcapng_interfaces_resolutions_and_direction_flags(tmp_path: Path) -> None:
    """Ethernet (us), raw IP (ns) and raw IP (2^-20 s) interfaces; flags give the direction."""
    path = tmp_path / "flows.pcapng"
    blocks = [
        pcapng_section(),
        pcapng_interface(1),
        pcapng_interface(RAW_IP, tsresol=9),
        pcapng_interface(RAW_IP, tsresol=0x80 | 20),
    ]
    arriving = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)  # we connected out
    leaving = _handshake("198.51.100.7", "192.0.2.1", 40002, 2000)  # a peer connected in
    unflagged = _handshake("192.0.2.1", "198.51.100.8", 40003, 3000)
    blocks += [
        pcapng_packet(0, T0 // 1000, ethernet(arriving[0]), OUTBOUND),
        pcapng_packet(0, T0 // 1000 + 5, ethernet(arriving[1]), INBOUND),
        pcapng_packet(1, T0 + 10_000, leaving[0], INBOUND),
        pcapng_packet(1, T0 + 20_000, leaving[1], OUTBOUND),
        pcapng_packet(2, (T0 // 10**9 + 1) << 20 | 12345, unflagged[1]),
    ]
    path.write_bytes(b"".join(blocks))
    events = replay(tmp_path, str(path))
    assert _begins(events) == [
        ("incoming", "198.51.100.7", 40002),
        ("outgoing", "192.0.2.1", 40001),
        ("outgoing", "192.0.2.1", 40003),  # not recorded, both ends public: the default
    ]
    tshark_oracle.assert_matches(path, events, set())


def test_pcapng_sections_of_either_byte_order(tmp_path: Path) -> None:
    path = tmp_path / "sections.pcapng"
    first = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    second = _handshake("2001:db8::1", "2001:db8::7", 40002, 2000)
    path.write_bytes(
        pcapng_section("<")
        + pcapng_interface(RAW_IP, tsresol=9)
        + b"".join(pcapng_packet(0, T0 + n, p) for n, p in enumerate(first))
        + pcapng_section(">")  # a new section: its own byte order and interfaces
        + pcapng_interface(1, order=">")
        + b"".join(
            pcapng_packet(0, T0 // 1000 + n, ethernet(p), order=">") for n, p in enumerate(second)
        )
    )
    events = replay(tmp_path, str(path))
    assert _begins(events) == [("outgoing", "192.0.2.1", 40001), ("outgoing", "2001:db8::1", 40002)]
    tshark_oracle.assert_matches(path, events, set())


def test_a_simple_packet_block_takes_the_time_of_the_packet_before(tmp_path: Path) -> None:
    syn, syn_ack = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    path = tmp_path / "simple.pcapng"
    path.write_bytes(
        pcapng_section()
        + pcapng_interface(RAW_IP, tsresol=9)
        + pcapng_packet(0, T0, syn)
        + pcapng_simple_packet(syn_ack)  # carries no timestamp of its own
    )
    [event] = replay(tmp_path, str(path))
    assert (event["timestamp"], event["data"]["src_port"]) == (T0, 40001)


def test_local_nets_decide_direction_when_the_capture_does_not(tmp_path: Path) -> None:
    path = tmp_path / "flows.pcap"
    outgoing = _handshake("10.1.2.3", "198.51.100.7", 40001, 1000)  # a private client
    incoming = _handshake("198.51.100.9", "10.1.2.3", 40002, 2000)  # to a private server
    with path.open("wb") as out:
        pcap(out, [(T0 + n, ethernet(p)) for n, p in enumerate(outgoing + incoming)])
    assert _begins(replay(tmp_path, str(path))) == [
        ("incoming", "198.51.100.9", 40002),
        ("outgoing", "10.1.2.3", 40001),
    ]
    local = ["--local-net", "198.51.100.0/25"]  # now 198.51.100.7 and .9 are ours, 10.1.2.3 not
    assert _begins(replay(tmp_path, str(path), *local)) == [
        ("incoming", "10.1.2.3", 40001),
        ("outgoing", "198.51.100.9", 40002),
    ]


@pytest.mark.usefixtures("root")
def test_direction_from_live_captures_on_both_ends(
    netns_pair: tuple[str, str, str], tmp_path: Path
) -> None:
    """tcpdump -i any (Linux cooked v2) on client and server of three real curl requests."""
    client_ns, server_ns, server_ip = netns_pair
    at_client, at_server = tmp_path / "client.pcap", tmp_path / "server.pcap"
    on_veth = tmp_path / "server-veth.pcap"  # Ethernet: no direction recorded
    server_link = f"hc-s{os.getpid()}"  # named by the netns_pair fixture
    with (
        http_server(server_ip, server_ns) as port,
        tcpdump(at_client, client_ns),
        tcpdump(at_server, server_ns),
        tcpdump(on_veth, server_ns, server_link),
    ):
        clients = [curl(f"http://{server_ip}:{port}/", netns=client_ns) for _ in range(3)]
    expected = {(ip, client_port) for ip, client_port, _, _ in clients}
    client_events, server_events = (
        replay(tmp_path, str(at_client)),
        replay(tmp_path, str(at_server)),
    )
    assert _begins(client_events) == sorted(("outgoing", ip, p) for ip, p in expected)
    assert _begins(server_events) == sorted(("incoming", ip, p) for ip, p in expected)
    tshark_oracle.assert_matches(at_client, client_events, set())
    tshark_oracle.assert_matches(at_server, server_events, set())
    as_server = replay(tmp_path, str(on_veth), "--local-net", f"{server_ip}/32")
    assert _begins(as_server) == sorted(("incoming", ip, p) for ip, p in expected)


def _losses(events: list[dict]) -> dict[str, int]:
    lost: dict[str, int] = {}
    for event in events:
        if event["name"] == "lost_events":
            for name, count in event["data"]["lost"].items():
                lost[name] = lost.get(name, 0) + count
    return lost


def test_a_file_that_breaks_off_keeps_what_came_before_and_the_run_goes_on(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole = (CORPUS / "pcpp_example2.pcap").read_bytes()
    cut = tmp_path / "cut.pcap"
    cut.write_bytes(whole[: len(whole) * 3 // 5])  # inside a packet, most likely
    then = CORPUS / "lwerdna_simple_http_sll2.pcap"  # loopback only: its events are told apart
    events = replay(tmp_path, str(cut), str(then))
    on_loopback = [e for e in events if e["data"].get("src") == "127.0.0.1"]
    tshark_oracle.assert_matches(cut, [e for e in events if e not in on_loopback], set())
    tshark_oracle.assert_matches(then, on_loopback, set())
    assert _losses(events) == {"capture_errors.truncated_file": 1}
    err = capsys.readouterr().err
    assert "capture errors: 1 (truncated_file 1)" in err
    assert "\r" not in err  # no progress line when stderr is not a terminal


def test_a_corrupt_block_stops_that_file_only(tmp_path: Path) -> None:
    first = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    later = _handshake("192.0.2.1", "198.51.100.7", 40002, 2000)
    broken = bytearray(pcapng_packet(0, T0 // 1000 + 2, ethernet(later[0])))
    broken[-4:] = (999).to_bytes(4, "little")  # the trailing length disagrees: nothing to trust
    path = tmp_path / "corrupt.pcapng"
    path.write_bytes(
        pcapng_section()
        + pcapng_interface(1)
        + b"".join(pcapng_packet(0, T0 // 1000 + n, ethernet(p)) for n, p in enumerate(first))
        + bytes(broken)
        + pcapng_packet(0, T0 // 1000 + 3, ethernet(later[1]))
    )
    then = CORPUS / "zeek_tcp_syn-synack.pcap"  # the next file is replayed all the same
    events = replay(tmp_path, str(path), str(then))
    assert _begins(events) == [
        ("outgoing", "141.142.228.5", 59856),
        ("outgoing", "192.0.2.1", 40001),
    ]
    assert _losses(events) == {"capture_errors.bad_block_length": 1}


def test_a_bad_packet_block_is_skipped_and_reading_goes_on(tmp_path: Path) -> None:
    """Blocks whose lengths agree are skipped alone: a wild timestamp, an unknown interface."""
    kept = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    lost = _handshake("192.0.2.1", "198.51.100.7", 40002, 2000)
    path = tmp_path / "blocks.pcapng"
    path.write_bytes(
        pcapng_section()
        + pcapng_interface(RAW_IP, tsresol=9)
        + pcapng_packet(0, 2**64 - 1, lost[1])  # beyond what a uint64 of ns since 1970 holds
        + pcapng_packet(7, T0, lost[1])  # no interface 7 was declared
        + b"".join(pcapng_packet(0, T0 + n, p) for n, p in enumerate(kept))
    )
    empty = tmp_path / "empty.pcap"  # a header, then nothing: no capture time of its own
    with empty.open("wb") as out:
        pcap(out, [])
    events = replay(tmp_path, str(path), str(empty))
    assert _begins(events) == [("outgoing", "192.0.2.1", 40001)]
    assert _losses(events) == {"capture_errors.bad_timestamp": 1, "capture_errors.bad_interface": 1}
    [marker] = [e for e in events if e["name"] == "lost_events"]
    assert marker["data"]["interval_start"] == T0 and marker["data"]["interval_end"] == T0 + 1
    assert {e["host"] for e in events} == {"replay"}  # not this machine's name


def test_frames_of_an_unsupported_link_type_are_counted_as_lost(tmp_path: Path) -> None:
    path = tmp_path / "user0.pcap"
    packets = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    with path.open("wb") as out:
        pcap(out, [(T0, packet) for packet in packets], link_type=147)
    events = replay(tmp_path, str(path))
    assert _begins(events) == []
    assert _losses(events) == {"decode_errors.unsupported_link_type.147": 2}


def test_malformed_truncated_and_fragmented_packets_are_counted_by_reason(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    syn_ack = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)[1]
    first = bytearray(syn_ack[:28])  # a first fragment holding 8 bytes of the TCP header
    first[2:4], first[6:8] = (28).to_bytes(2, "big"), (0x2000).to_bytes(2, "big")
    later = bytearray(syn_ack)
    later[6:8] = (3).to_bytes(2, "big")  # offset 24 bytes: no TCP header here
    malformed = syn_ack[:30]  # as long as it is on the wire: a broken packet, not a short capture
    path = tmp_path / "bad.pcap"
    with path.open("wb") as out:
        frames = [bytes(first), bytes(later), malformed, b"\x60" + syn_ack[1:10], syn_ack]
        pcap(out, [(T0 + n, ethernet(frame)) for n, frame in enumerate(frames)])
    short = tmp_path / "snaplen.pcap"  # tcpdump -s 40: the TCP header is cut
    with short.open("wb") as out:
        pcap(out, [(T0 + 9, ethernet(syn_ack))], snaplen=40)
    events = replay(tmp_path, str(path), str(short))
    assert _begins(events) == [("outgoing", "192.0.2.1", 40001)]
    assert _losses(events) == {
        "decode_errors.ip_fragment_incomplete": 1,
        "decode_errors.truncated_tcp": 1,
        "decode_errors.truncated_ip": 1,
        "decode_errors.snaplen": 1,
    }
    assert "skipped: 1 (ip_fragment 1)" in capsys.readouterr().err  # its loss counted on the first


@pytest.mark.parametrize(
    ("content", "message"),
    [(None, "cannot read"), (b"GET / HTTP/1.1\r\n" * 3, "not a pcap or pcapng file")],
)
def test_a_file_that_is_not_a_capture_stops_the_run_before_it_starts(
    content: bytes | None, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "input"
    if content is not None:
        path.write_bytes(content)
    good = str(CORPUS / "zeek_tcp_syn-synack.pcap")
    assert cli.main(["replay", good, str(path), "--sink", f"file:path={tmp_path}/out"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # checked before anything opened: not even a sink


def test_progress_is_shown_on_a_terminal(tmp_path: Path) -> None:
    terminal, other_end = pty.openpty()
    with subprocess.Popen(
        [
            HOSTCORE,
            "replay",
            str(CORPUS / "pcpp_example2.pcap"),
            "--sink",
            f"file:path={tmp_path}/x",
        ],
        stdout=subprocess.DEVNULL,
        stderr=other_end,
    ) as process:
        os.close(other_end)
        shown = b""
        while True:
            try:
                chunk = os.read(terminal, 4096)
            except OSError:  # EIO: the process closed its end
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait() == 0
    os.close(terminal)
    text = shown.decode()
    assert "\rpcpp_example2.pcap: 1,024 packets, " in text
    assert "replayed 1 file(s): 4,709 packets read" in text


def test_sigterm_stops_a_replay_with_what_was_read_delivered_and_totals(tmp_path: Path) -> None:
    path = _handshakes(tmp_path / "long.pcap", 100_000)
    events = tmp_path / "events.msgpack"
    with subprocess.Popen(
        [HOSTCORE, "replay", str(path), "--sink", f"file:path={events}"],
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        while not events.exists() or events.stat().st_size == 0:  # the first batch is out
            assert process.poll() is None, "the replay ended before it could be interrupted"
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    written = len(list(msgpack.Unpacker(events.open("rb"), raw=False)))
    reported = re.search(r"events: ([\d,]+)", err)
    assert reported and int(reported[1].replace(",", "")) == written < 100_000


def test_files_out_of_time_order_are_replayed_with_a_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    newer, older = CORPUS / "zeek_tcp_syn-synack.pcap", CORPUS / "zeek_wikipedia.pcap"
    events = replay(tmp_path, str(newer), str(older))
    assert len(_begins(events)) == 1 + 9
    assert "capture files out of time order" in capsys.readouterr().err


def test_signatures_find_in_a_capture_what_tshark_says_is_there(tmp_path: Path) -> None:
    """denied_domain on a replayed capture: one finding per connection to a denied name."""
    path = CORPUS / "zeek_wikipedia.pcap"
    config = tmp_path / "hostcore.toml"
    config.write_text('[signatures.denied_domain]\ndomains = ["wikimedia.org"]\n')
    events = replay(tmp_path, str(path), "--config", str(config), "--events", "denied_domain")
    findings = Counter(
        (e["data"]["dst"], e["data"]["triggered_by"][0]["data"]["src_port"])
        for e in events
        if e["name"] == "denied_domain"
    )
    expected = Counter(
        (begin.flow[2], begin.flow[1])
        for begin in tshark_oracle.begins(path)
        if any(name == "wikimedia.org" or name.endswith(".wikimedia.org") for name in begin.dst_dns)
    )
    assert findings == expected and len(expected) > 1


def _streams(path: Path, display_filter: str) -> set[str]:
    out = subprocess.run(
        ["tshark", "-n", "-r", str(path), "-Y", display_filter, "-T", "fields", "-e", "tcp.stream"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return set(out.split())


def test_a_replayed_syn_scan_gives_failed_handshakes_and_a_scan_finding(tmp_path: Path) -> None:
    """nmap's SYN scan: every SYN refused or unanswered as tshark's streams say, and the
    scan found, by source address since a capture names no process."""
    path = CORPUS / "ndpi_synscan.pcap"
    syns = _streams(path, "tcp.flags.syn==1 && tcp.flags.ack==0")
    answered = _streams(path, "tcp.flags.syn==1 && tcp.flags.ack==1")
    reset = _streams(path, "tcp.flags.reset==1")
    events = replay(tmp_path, str(path), "--events", "net_flow_tcp_failed,connection_scan")
    reasons = Counter(e["data"]["reason"] for e in events if e["name"] == "net_flow_tcp_failed")
    assert reasons == {
        "refused": len((syns & reset) - answered),
        "unanswered": len(syns - reset - answered),
    }
    scans = [e for e in events if e["name"] == "connection_scan"]
    assert scans and {e["context"]["pid"] for e in scans} == {None}


def test_a_connection_between_two_remote_hosts_ends_once(tmp_path: Path) -> None:
    """Neither end local: the capture is the initiator's, so the two FINs pass one socket."""
    syn, syn_ack = _handshake("192.0.2.1", "198.51.100.7", 40001, 1000)
    client_fin = ipv4("192.0.2.1", "198.51.100.7", tcp(40001, 443, FIN | ACK, seq=1001, ack=10))
    server_fin = ipv4("198.51.100.7", "192.0.2.1", tcp(443, 40001, FIN | ACK, seq=10, ack=1002))
    # No handshake in the file for this one: the higher port is taken for the client's.
    midstream = ipv4("203.0.113.5", "192.0.2.1", tcp(8080, 50000, FIN | ACK, seq=5, ack=6))
    path = tmp_path / "remote.pcap"
    with path.open("wb") as out:
        frames = [syn, syn_ack, server_fin, client_fin, midstream]
        pcap(out, [(T0 + n, ethernet(frame)) for n, frame in enumerate(frames)])
    events = replay(tmp_path, str(path), "--events", "net_flow_tcp_end")
    ends = [e["data"] for e in events if e["name"] == "net_flow_tcp_end"]
    assert sorted((d["src"], d["closed_by"], d["begin"]) for d in ends) == [
        ("192.0.2.1", "remote", "missed"),  # the higher port's end is local; its peer closed
        ("192.0.2.1", "remote", "seen"),  # the server's FIN came first
    ]


def test_a_slow_sink_slows_the_replay_and_loses_nothing(tmp_path: Path) -> None:
    """A file can wait: a full sink queue holds the replay up instead of dropping."""
    path = _handshakes(tmp_path / "many.pcap", 5000)
    done = subprocess.run(
        [HOSTCORE, "replay", str(path), "--sink", "stdout:queue_size=4"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(done.stdout.splitlines()) == 5000
    assert "not delivered by sinks: 0\n" in done.stderr
