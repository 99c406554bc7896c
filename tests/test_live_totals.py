"""net_flow_tcp_end's totals from the real probe: data bytes each way against what real
programs sent and received (Python sockets, half-closed with data after the first FIN
either way, and curl against nginx serving files of known sizes), segments against a
capture of the same traffic, and ends still waiting for their socket's close at stop."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from capture_tools import replay, tcpdump
from runs import Hostcore
from traffic import BACKLOG, closing_sockets, connected_pair, nginx, no_syncookies
from waiting import READY_TIMEOUT_S, wait_until

from hostcore import TcpTotals

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

END = "net_flow_tcp_end"
TOTALS = TcpTotals._fields
CHUNK = 65536


def ends(events: list[dict[str, Any]], port: int, *fields: str) -> Counter[tuple[Any, ...]]:
    """The multiset of ends on ``port``'s connections: direction, client port, then ``fields``."""
    return Counter(
        (
            event["data"]["conn_direction"],
            event["data"]["src_port"],
            *(event["data"][name] for name in fields),
        )
        for event in events
        if event["name"] == END and event["data"]["dst_port"] == port
    )


class Listener:
    """A listening socket that the test itself accepts on."""

    def __init__(self, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind((host, 0))
        self.sock.listen(BACKLOG)
        self.port: int = self.sock.getsockname()[1]

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()


def read_to_end(sock: socket.socket) -> int:
    received = 0
    while chunk := sock.recv(CHUNK):
        received += len(chunk)
    return received


def transfer(
    server: Listener, host: str, family: int, up: int, down: int, client_first: bool
) -> tuple[int, int, int]:
    """One connection sending ``up`` bytes to the server and ``down`` back. The side that
    sends first then shuts its writing half (its FIN is the connection's first) and goes on
    receiving what the other sends after it. Returns the client's port and the bytes each
    side read, as the programs counted them."""
    read_by_server: list[int] = []

    def serve() -> None:
        sock, _ = server.sock.accept()
        with sock:
            if client_first:
                read_by_server.append(read_to_end(sock))
                sock.sendall(b"d" * down)
            else:
                sock.sendall(b"d" * down)
                sock.shutdown(socket.SHUT_WR)
                read_by_server.append(read_to_end(sock))

    thread = threading.Thread(target=serve)
    thread.start()
    with socket.socket(family) as client:
        client.connect((host, server.port))
        if client_first:
            client.sendall(b"u" * up)
            client.shutdown(socket.SHUT_WR)
            read_by_client = read_to_end(client)
        else:
            read_by_client = read_to_end(client)
            client.sendall(b"u" * up)
        port = client.getsockname()[1]
    thread.join(timeout=READY_TIMEOUT_S)
    return port, read_by_server[0], read_by_client


SIZES = [(0, 0), (1, 0), (0, 1), (1000, 2000), (12_345, 200_000), (3_000_000, 7)]


@pytest.mark.parametrize(
    ("host", "family"), [("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)]
)
def test_data_bytes_each_way_are_what_the_programs_moved(
    tmp_path: Path, host: str, family: int
) -> None:
    """Half-closed either way, with data after the first FIN: a total read at that FIN
    would miss it. Both sockets' ends count exactly what each program sent and read."""
    with Listener(host, family) as server, no_syncookies(), Hostcore(tmp_path) as hostcore:
        moved = [
            (transfer(server, host, family, up, down, client_first), up, down, client_first)
            for up, down in SIZES
            for client_first in (True, False)
        ]
        wait_until(lambda: not closing_sockets(server.port), "sockets closed")
        events = hostcore.stop()
    expected: Counter[tuple[Any, ...]] = Counter()
    for (port, read_by_server, read_by_client), up, down, client_first in moved:
        assert (read_by_server, read_by_client) == (up, down)
        client_closed = "local" if client_first else "remote"
        server_closed = "remote" if client_first else "local"
        expected[("outgoing", port, client_closed, up, down)] += 1
        expected[("incoming", port, server_closed, down, up)] += 1
    got = ends(events, server.port, "closed_by", "bytes_sent", "bytes_received")
    assert got == expected
    assert {retransmits for *_, retransmits in ends(events, server.port, "retransmits")} == {0}


def test_curl_against_nginx_files_of_known_sizes(tmp_path: Path) -> None:
    """curl's own byte counts (request and upload sent, headers and body received) against
    the ends of its socket and of nginx's."""
    files = tmp_path / "files"
    files.mkdir()
    sizes = [0, 1, 4096, 1_000_000]
    for size in sizes:
        (files / f"{size}.bin").write_bytes(b"x" * size)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(b"y" * 300_000)
    with nginx(tmp_path, files) as port, no_syncookies(), Hostcore(tmp_path) as hostcore:
        requests = [["-o", "/dev/null", f"http://127.0.0.1:{port}/files/{n}.bin"] for n in sizes]
        requests.append(["-o", "/dev/null", "--data-binary", f"@{upload}", f"http://[::1]:{port}/"])
        counted = [curl_counts(arguments) for arguments in requests]
        wait_until(lambda: not closing_sockets(port), "nginx's sockets closed")  # then the ends
        events = hostcore.stop()
    expected: Counter[tuple[Any, ...]] = Counter()
    for local_port, sent, received, _ in counted:
        expected[("outgoing", local_port, sent, received)] += 1
        expected[("incoming", local_port, received, sent)] += 1
    assert ends(events, port, "bytes_sent", "bytes_received") == expected
    assert [body for *_, body in counted] == [*sizes, 3]  # each file came whole; then "ok\n"


def curl_counts(arguments: list[str]) -> tuple[int, int, int, int]:
    """One curl request: its local port, the bytes it sent, received, and of them the body."""
    out = ["%{local_port}", "%{size_request}", "%{size_upload}", "%{size_header}"]
    command = ["curl", "-sS", "--noproxy", "*", "-w", " ".join([*out, "%{size_download}"])]
    result = subprocess.run([*command, *arguments], check=True, capture_output=True, text=True)
    local_port, request, uploaded, header, body = map(int, result.stdout.split())
    return local_port, request + uploaded, header + body, body


def captured_segments(path: Path) -> Counter[tuple[int, int]]:
    """Segments in a capture, by (source port, destination port), as tshark reads them."""
    fields = ["-T", "fields", "-e", "tcp.srcport", "-e", "tcp.dstport"]
    out = subprocess.run(["tshark", "-r", str(path), *fields], check=True, capture_output=True)
    return Counter(tuple(map(int, line.split())) for line in out.stdout.decode().splitlines())


def test_segments_are_those_a_capture_sees(tmp_path: Path) -> None:
    """Each packet here is one segment (under lo's MSS, so the kernel does not count a
    large send as the several segments it stands for). The client's socket counts every
    segment both ways; the accepted one every segment but the SYN+ACK, which its
    listener's request sent before the socket existed."""
    capture = tmp_path / "lo.pcap"
    with (
        Listener() as server,
        no_syncookies(),
        tcpdump(capture, None, "lo", f"tcp port {server.port}"),
        Hostcore(tmp_path) as hostcore,
    ):
        ports = [
            transfer(server, "127.0.0.1", socket.AF_INET, up, down, client_first)[0]
            for up, down in [(0, 0), (1000, 2000), (5, 30_000)]
            for client_first in (True, False)
        ]
        wait_until(lambda: not closing_sockets(server.port), "sockets closed")
        events = hostcore.stop()
    segments = captured_segments(capture)
    expected: Counter[tuple[Any, ...]] = Counter()
    for port in ports:
        up, down = segments[(port, server.port)], segments[(server.port, port)]
        expected[("outgoing", port, up, down)] += 1
        expected[("incoming", port, down - 1, up)] += 1
    assert ends(events, server.port, "segments_sent", "segments_received") == expected


def test_an_end_still_waiting_for_its_close_comes_at_stop_without_totals(
    tmp_path: Path,
) -> None:
    """A half-closed connection still open when hostcore stops: its sockets' FINs were
    held for the close, which never came; both ends come at stop, with null totals."""
    with (
        no_syncookies(),
        Hostcore(tmp_path) as hostcore,
        connected_pair() as (listener, client, accepted),
    ):
        port, server_port = client.getsockname()[1], listener.getsockname()[1]
        client.sendall(b"u" * 100)
        client.shutdown(socket.SHUT_WR)
        assert read_to_end(accepted) == 100  # the end of it: the client's FIN arrived
        events = hostcore.stop()
    nulls = (None,) * len(TOTALS)
    assert ends(events, server_port, "closed_by", *TOTALS) == Counter(
        {("outgoing", port, "local", *nulls): 1, ("incoming", port, "remote", *nulls): 1}
    )


def test_a_socket_closed_with_data_unread_ends_with_rst_and_exact_bytes(
    tmp_path: Path,
) -> None:
    """The server closes with 20,000 bytes unread: the kernel resets the connection. Both
    ends say rst, and count the bytes that arrived, read or not."""
    with no_syncookies(), Hostcore(tmp_path) as hostcore:
        with connected_pair() as (listener, client, accepted):
            port, server_port = client.getsockname()[1], listener.getsockname()[1]
            client.sendall(b"u" * 20_000)
            wait_until(lambda: len(accepted.recv(CHUNK, socket.MSG_PEEK)) == 20_000, "data arrived")
            accepted.close()
            with pytest.raises(ConnectionResetError):
                read_to_end(client)
        wait_until(lambda: not closing_sockets(server_port), "sockets closed")
        events = hostcore.stop()
    assert ends(
        events, server_port, "closed_by", "closed_with", "bytes_sent", "bytes_received"
    ) == Counter(
        {
            ("outgoing", port, "remote", "rst", 20_000, 0): 1,
            ("incoming", port, "local", "rst", 0, 20_000): 1,
        }
    )


def test_round_trip_times_are_those_of_loopback(tmp_path: Path) -> None:
    """On loopback a round trip takes microseconds: both RTTs are set, and the minimum is
    at most the smoothed one. (The delay line in test_live_handshake.py checks them against
    a known delay.)"""
    with Listener() as server, no_syncookies(), Hostcore(tmp_path) as hostcore:
        started = time.monotonic_ns()
        transfer(server, "127.0.0.1", socket.AF_INET, 1000, 1000, True)
        lived_us = (time.monotonic_ns() - started) // 1000
        wait_until(lambda: not closing_sockets(server.port), "sockets closed")
        events = hostcore.stop()
    rtts = [
        (srtt, low)
        for _, _, srtt, low in ends(events, server.port, "srtt_us", "min_rtt_us").elements()
    ]
    assert len(rtts) == 2
    assert all(0 < low <= srtt <= lived_us for srtt, low in rtts)


def test_a_replayed_capture_gives_the_client_sockets_totals(tmp_path: Path) -> None:
    """The same traffic live and from a capture taken on lo meanwhile. A capture holding
    both ends of a connection is replayed from its initiator's side, so its one end per
    connection is the client socket's: the same close, bytes, segments and retransmits,
    and no round-trip times (a capture cannot give the kernel's). Its handshake runs
    from the SYN's capture time, just after connect(), to the same SYN+ACK."""
    capture = tmp_path / "lo.pcap"
    counted = ("closed_by", "closed_with", *TOTALS[:5])
    with (
        Listener() as server,
        no_syncookies(),
        tcpdump(capture, None, "lo"),
        Hostcore(tmp_path) as hostcore,
    ):
        for up, down in [(0, 0), (1000, 2000), (5, 30_000)]:
            for client_first in (True, False):
                transfer(server, "127.0.0.1", socket.AF_INET, up, down, client_first)
        with connected_pair() as (listener, client, accepted):  # reset with data unread
            reset_port = listener.getsockname()[1]
            client.sendall(b"u" * 20_000)
            wait_until(lambda: len(accepted.recv(CHUNK, socket.MSG_PEEK)) == 20_000, "arrived")
            accepted.close()
            with pytest.raises(ConnectionResetError):
                read_to_end(client)
        wait_until(lambda: not closing_sockets(server.port), "sockets closed")
        wait_until(lambda: not closing_sockets(reset_port), "sockets closed")
        live = hostcore.stop()
    events = replay(tmp_path, str(capture), "--events", "flows")
    for port in (server.port, reset_port):
        expected = Counter(
            {e: n for e, n in ends(live, port, *counted).items() if e[0] == "outgoing"}
        )
        assert sum(expected.values()) == (6 if port == server.port else 1)
        assert ends(events, port, *counted) == expected
        assert {end[-2:] for end in ends(events, port, "srtt_us", "min_rtt_us")} == {(None, None)}
    handshakes = {
        event["data"]["src_port"]: event["data"]["handshake_ns"]
        for event in live
        if event["name"] == "net_flow_tcp_begin" and event["data"]["conn_direction"] == "outgoing"
    }
    replayed_begins = [event["data"] for event in events if event["name"] == "net_flow_tcp_begin"]
    assert len(replayed_begins) == 7
    for begin in replayed_begins:
        # connect() comes first, then its SYN leaves: the capture's handshake is no longer
        # than the live one, and the two clocks (the probe's, tcpdump's) agree within 1 ms.
        assert 0 < begin["handshake_ns"] <= handshakes[begin["src_port"]] + 1_000_000
