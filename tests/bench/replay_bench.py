"""Replay speed: `hostcore replay` against `tshark -Y 'tcp.flags.syn==1 && tcp.flags.ack==1'`.

hostcore runs twice: begin events only (what that tshark command finds) and all of
`flows` (begin and end).

On the largest capture of tests/data/captures and on a synthetic capture of
1,000,000 packets written here (100,000 connections of 10 packets each, a DNS
answer before every tenth). Each tool reads each file --runs times; the table
gives packets per second from the median wall time, process start included.
Run: `make bench` (or `.venv/bin/python tests/bench/replay_bench.py`).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from captures import ethernet, pcap  # noqa: E402
from dns_messages import answer  # noqa: E402
from packets import ACK, FIN, SYN, ipv4, tcp, udp  # noqa: E402
from runs import HOSTCORE  # noqa: E402
from tshark_oracle import CORPUS  # noqa: E402

PSH = 0x08


def synthetic(connections: int) -> Iterator[tuple[int, bytes]]:
    """10 packets a connection: handshake, 4 data segments, FIN, FIN, ACK."""
    now = 1_700_000_000 * 10**9
    for n in range(connections):
        client = f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"
        server = f"198.18.{n // 10 >> 8 & 255}.{n // 10 & 255}"  # ten connections a name
        port, isn, server_isn = 1024 + n % 60000, n * 7919 & 0xFFFFFFFF, n * 104729 & 0xFFFFFFFF
        if n % 10 == 0:
            message = answer(f"s{n}.example.", (f"s{n}.example.", 300, "A", server))
            yield now, ethernet(ipv4("10.0.0.53", client, udp(53, 40000, message), proto=17))
        out = (client, server, port, 443)
        back = (server, client, 443, port)
        segments = [
            (out, SYN, isn, 0),
            (back, SYN | ACK, server_isn, isn + 1),
            (out, ACK, isn + 1, server_isn + 1),
            (out, ACK | PSH, isn + 1, server_isn + 1),
            (back, ACK | PSH, server_isn + 1, isn + 101),
            (out, ACK | PSH, isn + 101, server_isn + 101),
            (back, ACK | PSH, server_isn + 101, isn + 201),
            (out, FIN | ACK, isn + 201, server_isn + 201),
            (back, FIN | ACK, server_isn + 201, isn + 202),
            (out, ACK, isn + 202, server_isn + 202),
        ]
        for (src, dst, sport, dport), flags, seq, ack in segments:
            payload = bytes(100) if flags & PSH else b""
            now += 20_000
            yield now, ethernet(ipv4(src, dst, tcp(sport, dport, flags, seq, ack) + payload))


def packets_in(path: Path) -> int:
    out = subprocess.run(["capinfos", "-M", "-c", str(path)], capture_output=True, text=True)
    return int(out.stdout.split("Number of packets:")[1].split()[0])


def wall_s(command: Sequence[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        generated = Path(workdir) / "synthetic.pcap"
        with generated.open("wb") as out:
            pcap(out, synthetic(args.connections))
        largest = max(CORPUS.glob("*.pcap*"), key=lambda path: path.stat().st_size)
        sink = f"file:path={workdir}/events.msgpack"
        rows = []
        for path in (largest, generated):
            tools = {
                # Like for like with the tshark command: the connection starts only.
                "hostcore replay (begin)": [
                    *(HOSTCORE, "replay", str(path), "--sink", sink),
                    *("--events", "net_flow_tcp_begin"),
                ],
                "hostcore replay (flows)": [HOSTCORE, "replay", str(path), "--sink", sink],
                "tshark -Y synack": [
                    "tshark",
                    "-n",
                    "-r",
                    str(path),
                    "-Y",
                    "tcp.flags.syn==1 && tcp.flags.ack==1",
                ],
            }
            times = {
                name: [wall_s(command) for _ in range(args.runs)] for name, command in tools.items()
            }
            rows.append((path.name, packets_in(path), times))
    print(f"Replay speed (median of {args.runs} runs, wall time incl. start-up)\n")
    print("| capture | packets | tool | seconds | packets/s | vs tshark |")
    print("|---|---|---|---|---|---|")
    for name, count, times in rows:
        tshark_s = statistics.median(times["tshark -Y synack"])
        for tool, values in times.items():
            seconds = statistics.median(values)
            print(
                f"| {name} | {count:,} | {tool} | {seconds:.2f} | {count / seconds:,.0f} "
                f"| {tshark_s / seconds:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
