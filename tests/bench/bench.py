"""`make bench`: what hostcore costs a busy host, side by side with bcc's tcpstates.

Interleaved rounds (no probe, hostcore, hostcore with the built-in signatures,
tcpstates, then again) so that machine
drift hits every setup alike; nginx with keep-alive off, driven by ab over
loopback. Prints one table: medians with 95% bootstrap intervals, exact event
accounting, agent CPU and peak RSS, and the user-space pipeline alone.
Run as root: `make bench` (or `.venv/bin/python tests/bench/bench.py --rounds 10`).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import msgpack

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from support import HOSTCORE, nginx  # noqa: E402

READY_TIMEOUT_S = 120


@dataclass
class Run:
    """One load run against nginx with (maybe) an agent attached."""

    rate: float  # completed connections per second, as ab measured them
    connections: int
    agent_cpu_s: float = 0.0
    peak_rss_kib: int = 0
    events: int = 0  # begin events for nginx's port (2 per loopback connection)
    expected: int = 0  # 2 x the kernel's Tcp PassiveOpens during the run (host-wide)
    kernel_drops: int = 0
    user_drops: int = 0


@dataclass
class Setup:
    name: str
    start: Callable[[Path], Agent | None]
    runs: list[Run] = field(default_factory=list)


class Agent:
    """A tracer process: started before the load, stopped after it."""

    def __init__(
        self,
        command: list[str],
        ready: Callable[[str], bool],
        workdir: Path,
        stop_signal: int = signal.SIGINT,
    ) -> None:
        self.stop_signal = stop_signal
        self.stderr_path = workdir / "agent.stderr"
        self.stdout_path = workdir / "agent.stdout"
        self.process = subprocess.Popen(
            command,
            stdout=self.stdout_path.open("w"),
            stderr=self.stderr_path.open("w"),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready(self._output()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{command[0]} did not start:\n{self._output()}")
            time.sleep(0.05)

    def _output(self) -> str:
        return self.stdout_path.read_text() + self.stderr_path.read_text()

    def cpu_s(self) -> float:
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def peak_rss_kib(self) -> int:
        status = Path(f"/proc/{self.process.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+)", status).group(1))  # type: ignore[union-attr]

    def stop(self) -> str:
        self.process.send_signal(self.stop_signal)
        self.process.wait(timeout=120)
        return self.stderr_path.read_text()

    def kill(self) -> None:
        """Whatever happened: no tracer may outlive its run and skew the next ones."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


# The built-in signatures as a user would configure them; nginx's port is not on
# unexpected_listener's default allow-list, so it reports nginx once a minute.
SIGNATURE_OPTIONS = """
[signatures.denied_domain]
domains = ["evil.test", "*.tracker.test", "ads?.cdn.test"]
"""


def hostcore(workdir: Path, events: str = "net_flow_tcp_begin", options: str = "") -> Agent:
    sink = f"file:path={workdir / 'events.msgpack'}"
    config = workdir / "hostcore.toml"
    config.write_text(options)
    command = [HOSTCORE, "run", "--events", events, "--sink", sink, "--config", str(config)]
    return Agent(command, lambda out: '"ready"' in out, workdir)


def hostcore_with_signatures(workdir: Path) -> Agent:
    return hostcore(workdir, "net_flow_tcp_begin,signatures", SIGNATURE_OPTIONS)


def tcpstates(workdir: Path) -> Agent:
    # SIGTERM: on SIGINT it first works through its backlog, which can take minutes.
    return Agent(["tcpstates-bpfcc"], lambda out: "SKADDR" in out, workdir, signal.SIGTERM)


def ab(port: int, connections: int, concurrency: int) -> tuple[float, int]:
    out = subprocess.run(
        ["ab", "-q", "-n", str(connections), "-c", str(concurrency), f"http://127.0.0.1:{port}/"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    rate = float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    complete = int(re.search(r"Complete requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    failed = int(re.search(r"Failed requests:\s+(\d+)", out).group(1))  # type: ignore[union-attr]
    return rate, complete - failed


def passive_opens() -> int:
    """Connections this host's listeners have completed (/proc/net/snmp, host-wide)."""
    header, values = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines()
                      if line.startswith("Tcp:")]  # fmt: skip
    return int(values[header.index("PassiveOpens")])


def measure(setup: Setup, port: int, connections: int, concurrency: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        agent = setup.start(workdir)
        try:
            return _measure(setup, agent, workdir, port, connections, concurrency)
        finally:
            if agent is not None:
                agent.kill()


def _measure(
    setup: Setup, agent: Agent | None, workdir: Path, port: int, connections: int, concurrency: int
) -> Run:
    cpu_before = agent.cpu_s() if agent else 0.0
    opens_before = passive_opens()
    rate, done = ab(port, connections, concurrency)
    run = Run(rate, done, expected=2 * (passive_opens() - opens_before))
    if agent is None:
        return run
    run.agent_cpu_s = agent.cpu_s() - cpu_before
    run.peak_rss_kib = agent.peak_rss_kib()
    log = agent.stop()
    if setup.name.startswith("hostcore"):
        totals = json.loads(log.strip().splitlines()[-1])
        run.kernel_drops = totals.get("kernel_reserve_failures", 0)
        user_space = (
            "decode_errors.",
            "plugin_errors.",
            "signature_errors.",
            "sink_errors.",
            "sink_flush_failures.",
        )
        run.user_drops = sum(v for k, v in totals.items() if k.startswith(user_space))
        with (workdir / "events.msgpack").open("rb") as stream:
            run.events = sum(
                1
                for event in msgpack.Unpacker(stream, raw=False)
                if event["name"] == "net_flow_tcp_begin" and event["data"]["dst_port"] == port
            )
    else:
        run.kernel_drops = sum(int(n) for n in re.findall(r"[Ll]ost (\d+) samples", log))
    return run


def interval(values: Sequence[float], rounds: int = 2000) -> tuple[float, float, float]:
    """Median and a 95% percentile-bootstrap interval for it (fixed seed: reproducible)."""
    rng = random.Random(7)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return statistics.median(values), medians[int(0.025 * rounds)], medians[int(0.975 * rounds)]


def cell(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    mid, low, high = interval(values)
    return f"{fmt.format(mid)} [{fmt.format(low)}-{fmt.format(high)}]"


def pipeline_records_per_s() -> tuple[float, str]:
    """decode -> dispatch -> begin (with DNS) -> msgpack -> null sink, on recorded records."""
    from dns_messages import answer
    from hostcore_net_flow import begin
    from packets import ACK, FIN, RST, SYN, ipv4, tcp, udp

    from hostcore.pipeline.accounting import Accounting
    from hostcore.pipeline.context import Contexts
    from hostcore.pipeline.dispatch import Pipeline
    from hostcore.probe import records
    from hostcore.probe.cgroup import CgroupIndex, cgroup2_mount

    def record(data: bytes, direction: int) -> bytes:
        owner = records.OWNER.pack(4242, 4242, 1000, 2, 0, b"curl")
        root_cgroup = os.stat(cgroup2_mount()).st_ino
        return records.HEADER.pack(1, root_cgroup, 7, owner, len(data), direction) + data

    mix: list[bytes] = []
    for i in range(10_000):
        client = f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"
        server = f"198.51.100.{i % 250}"  # 250 servers, each named by a few answers
        kind = i % 10
        if kind < 6:  # SYN+ACKs: 60%
            data = ipv4(server, client, tcp(443, 30000 + i % 30000, SYN | ACK, ack=i))
        elif kind < 9:  # FIN/RSTs: 30% (passed up, no enabled event wants them yet)
            flags = FIN | ACK if kind < 8 else RST
            data = ipv4(client, server, tcp(30000 + i % 30000, 443, flags))
        else:  # DNS answers: 10%
            name = f"n{i}.example."
            message = answer(name, (name, 60, "A", f"198.51.100.{(i + 1) % 250}"))
            data = ipv4("127.0.0.53", "127.0.0.1", udp(53, 40000, message), proto=17)
        mix.append(record(data, i & 1))

    class NullSink:
        def write(self, packed: bytes, event: object) -> None:
            pass

        def flush(self) -> None:
            pass

        def close(self) -> None:
            pass

    best = 0.0
    for _ in range(5):
        contexts = Contexts(CgroupIndex(cgroup2_mount()), {})  # as a run has them
        pipeline = Pipeline(
            [begin.SPEC], {"null": NullSink()}, "bench", Accounting(0), contexts=contexts
        )
        started = time.process_time()
        for k in range(0, len(mix), 100):  # batches as a 10 ms poll brings them
            pipeline.feed(records.packets(mix[k : k + 100], 0, Counter()))
        pipeline.close()
        best = max(best, len(mix) / (time.process_time() - started))
    return best, "60% SYN+ACK, 30% FIN/RST, 10% DNS answers (A), 10,000 records, batches of 100"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (the probes need it)", file=sys.stderr)
        return 2
    tracing = Path("/sys/kernel/tracing")
    if tracing.is_dir() and not any(tracing.iterdir()):  # tcpstates-bpfcc needs tracefs
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=True)
    setups = [
        Setup("no probe", lambda _: None),
        Setup("hostcore", hostcore),
        Setup("hostcore + signatures", hostcore_with_signatures),
        Setup("tcpstates-bpfcc", tcpstates),
    ]
    with tempfile.TemporaryDirectory() as tmp, nginx(Path(tmp)) as port:
        for round_number in range(1, args.rounds + 1):
            # Rotated, so that no setup always follows the same one (and its TIME_WAITs).
            shift = round_number % len(setups)
            for setup in setups[shift:] + setups[:shift]:
                setup.runs.append(measure(setup, port, args.connections, args.concurrency))
            line = "  ".join(f"{s.name} {s.runs[-1].rate:.0f}/s" for s in setups)
            print(f"round {round_number}/{args.rounds}: {line}", file=sys.stderr, flush=True)
    pipeline_rate, mix = pipeline_records_per_s()
    print(report(setups, args, pipeline_rate, mix))
    return 0


def report(setups: list[Setup], args: argparse.Namespace, pipeline_rate: float, mix: str) -> str:
    baseline = setups[0].runs
    lines = [
        f"hostcore bench: {args.rounds} interleaved rounds of {args.connections} connections, "
        f"ab -c {args.concurrency}, nginx on loopback; median [95% bootstrap interval]",
        "",
        "| setup | conn/s | ratio to no probe | agent CPU s / 10k conn | peak RSS MiB "
        "| events / expected | kernel drops | user-space drops |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for setup in setups:
        runs = setup.runs
        ratios = [r.rate / b.rate for r, b in zip(runs, baseline, strict=True)]
        row = [setup.name, cell([r.rate for r in runs]), cell(ratios, "{:.2f}")]
        if setup.name == "no probe":
            row += ["-", "-", "-", "-", "-"]
        else:
            cpu = [r.agent_cpu_s / r.connections * 10_000 for r in runs]
            row += [cell(cpu, "{:.2f}"), f"{max(r.peak_rss_kib for r in runs) / 1024:.0f}"]
            if setup.name.startswith("hostcore"):
                row.append(f"{sum(r.events for r in runs)} / {sum(r.expected for r in runs)}")
                row.append(str(sum(r.kernel_drops for r in runs)))
                row.append(str(sum(r.user_drops for r in runs)))
            else:
                row += ["-", f"{sum(r.kernel_drops for r in runs)} lost samples", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "events / expected: begin events for nginx's port, against twice the connections the "
        "host's listeners completed (Tcp PassiveOpens, host-wide) during the runs.",
        f"pipeline alone, one core: {pipeline_rate:,.0f} records/s ({mix})",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
