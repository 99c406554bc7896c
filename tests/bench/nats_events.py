"""Sustained events/s through the fleet sinks, acknowledged end to end (not a test; README:
A fleet on NATS). Prints one table.

For each setup it starts the receiver in a process of its own (Debian's nats-server with
JetStream on file storage; for ``forward``, tests/fluent_receiver.py, since Debian 12
packages neither Fluent Bit nor Fluentd), runs the core's sink path
(hostcore.testing.SinkHost) with the sink, emits EVENTS synthetic events as fast as the
dispatch thread can (the kit wakes the sink's thread for each; a run does once a ring-
buffer drain), and times until the run's close, when every one has been acked
(JetStream's ack per message; Fluent Forward's ``ack`` per chunk). Then it checks that
the receiver holds them all. TLS rows use certificates made for the run (tests/certs.py)
and a login (NATS: user and password; forward: the shared key). Each setup runs
``--rounds`` times, interleaved; the table gives the median round and the range.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import nats

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from certs import Authority, Issued  # noqa: E402
from nats_server import NatsServer  # noqa: E402

from hostcore.testing import SinkHost, synthetic_events  # noqa: E402

PASSWORD = "pw0123456789abcdef"
SHARED_KEY = "fleet key"


@dataclass(frozen=True)
class Round:
    seconds: float
    cpu_us: float  # this process's CPU per event: the agent's side of the sink
    receiver_us: float  # the receiver's (nats-server's, or the Fluent receiver's) per event
    stored: int
    losses: Mapping[str, int]


def cpu_s(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far (/proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Setup = Callable[[Path, Authority, int], Round]


def timed(
    sinks: Mapping[str, Mapping[str, str]], events: int
) -> tuple[float, float, dict[str, int]]:
    """(seconds, CPU us per event, losses) of ``events`` through ``sinks``, until acked."""
    host = SinkHost(sinks, drain_timeout_s=600)
    flows = list(synthetic_events(events))
    started, cpu = time.perf_counter(), time.process_time()
    for data in flows:
        host.emit(data)
    totals = host.close()
    seconds = time.perf_counter() - started
    cpu_us = (time.process_time() - cpu) / events * 10**6
    return seconds, cpu_us, {k: v for k, v in totals.items() if k.startswith("sink_")}


async def _stream_messages(url: str, **connect: object) -> int:
    client = await nats.connect(url, **connect)
    try:
        return int((await client.jetstream().stream_info("HOSTCORE")).state.messages)
    finally:
        await client.close()


def nats_round(directory: Path, authority: Authority, events: int, tls: bool) -> Round:
    config = ""
    options = {"queue_size": str(events)}
    connect: dict[str, object] = {}
    if tls:
        bus = authority.issue("bus")
        config = (
            f"tls {{ cert_file: {str(bus.cert_file)!r}, key_file: {str(bus.key_file)!r} }}\n"
            f"authorization {{ user: node-1, password: {PASSWORD} }}\n"
        )
        (directory / "password").write_text(PASSWORD)
        options |= {"tls": "true", "ca_file": str(authority.cert_file)}
        options |= {"user": "node-1", "password": f"file:{directory / 'password'}"}
        connect = {"user": "node-1", "password": PASSWORD, "tls": client_context(authority)}
    with NatsServer(directory / "store", config) as server:
        assert server.process is not None
        before = cpu_s(server.process.pid)
        seconds, cpu_us, losses = timed({"nats": {"url": server.url, **options}}, events)
        receiver_us = (cpu_s(server.process.pid) - before) / events * 10**6
        stored = asyncio.run(_stream_messages(server.url, **connect))
    return Round(seconds, cpu_us, receiver_us, stored, losses)


def client_context(authority: Authority) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=authority.cert_file)


def forward_round(
    directory: Path, authority: Authority, events: int, mode: str, tls: bool
) -> Round:
    command = [sys.executable, str(TESTS / "fluent_receiver.py")]
    options = {"mode": mode, "ack": "true", "queue_size": str(events)}
    if tls:
        issued: Issued = authority.issue("receiver")
        command += ["--tls", str(issued.cert_file), str(issued.key_file)]
        command += ["--shared-key", SHARED_KEY]
        (directory / "shared.key").write_text(SHARED_KEY)
        options |= {"tls": "true", "ca_file": str(authority.cert_file)}
        options |= {"shared_key": f"file:{directory / 'shared.key'}"}
    receiver = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        assert receiver.stdout is not None
        port = receiver.stdout.readline().split()[1]
        address = f"127.0.0.1:{port}"
        before = cpu_s(receiver.pid)
        seconds, cpu_us, losses = timed({"forward": {"address": address, **options}}, events)
        receiver_us = (cpu_s(receiver.pid) - before) / events * 10**6
    finally:
        receiver.send_signal(signal.SIGTERM)
        output, _ = receiver.communicate(timeout=60)
    return Round(seconds, cpu_us, receiver_us, int(output.split()[-1]), losses)


SETUPS: dict[str, Setup] = {
    "nats, clear text": lambda d, a, n: nats_round(d, a, n, tls=False),
    "nats, TLS + user/password": lambda d, a, n: nats_round(d, a, n, tls=True),
    "forward packed, ack": lambda d, a, n: forward_round(d, a, n, "packed", tls=False),
    "forward compressed (gzip), ack": lambda d, a, n: forward_round(
        d, a, n, "compressed", tls=False
    ),
    "forward packed, ack, TLS + shared key": lambda d, a, n: forward_round(
        d, a, n, "packed", tls=True
    ),
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    results: dict[str, list[Round]] = {name: [] for name in SETUPS}
    with tempfile.TemporaryDirectory() as temporary:
        authority = Authority(Path(temporary) / "pki")
        for number in range(args.rounds):
            for index, (name, setup) in enumerate(SETUPS.items()):
                directory = Path(temporary) / f"round-{number}-setup-{index}"
                directory.mkdir()
                results[name].append(setup(directory, authority, args.events))
    print(f"{args.events:,} events a round, {args.rounds} rounds; median round [slowest-fastest]")
    print(
        "| setup | events/s acked | agent CPU us/event | receiver CPU us/event "
        "| stored / sent | losses |"
    )
    print("|---|---|---|---|---|---|")
    failed = False
    for name, rounds in results.items():
        rates = sorted(args.events / r.seconds for r in rounds)
        cpu = statistics.median(r.cpu_us for r in rounds)
        receiver = statistics.median(r.receiver_us for r in rounds)
        stored = {r.stored for r in rounds}
        losses = {k: v for r in rounds for k, v in r.losses.items()}
        failed |= stored != {args.events} or bool(losses)
        print(
            f"| {name} | {statistics.median(rates):,.0f} [{rates[0]:,.0f}-{rates[-1]:,.0f}] "
            f"| {cpu:.1f} | {receiver:.1f} | {'/'.join(map(str, sorted(stored)))} / {args.events} "
            f"| {losses or 'none'} |"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
