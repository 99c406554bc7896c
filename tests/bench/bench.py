"""`make bench`: what hostcore costs a busy host, side by side with bcc's tcpstates.

Interleaved rounds of every setup (no probe; hostcore with begin only, with flows,
with flows printing JSON lines to stdout as `make run` does, with flows and the
built-in signatures; tcpstates), rotated so that machine drift hits every setup
alike; nginx with keep-alive off, driven by ab over loopback. Prints one table:
medians with 95% bootstrap intervals, exact event accounting (begins and ends
against the kernel's count of connections), agent CPU and peak RSS; then the
user-space pipeline alone (tests/bench/pipeline_alone.py).
Run as root: `make bench` (`BENCH_ARGS="--concurrency 128"` for more clients at once).
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

import pipeline_alone  # noqa: E402
from runs import HOSTCORE  # noqa: E402
from traffic import nginx  # noqa: E402

READY_TIMEOUT_S = 120


@dataclass
class Run:
    """One load run against nginx with (maybe) an agent attached."""

    rate: float  # completed connections per second, as ab measured them
    connections: int
    agent_cpu_s: float = 0.0
    peak_rss_kib: int = 0
    begins: int = 0  # begin events for nginx's port (2 per loopback connection)
    ends: int = 0  # end events for nginx's port (2 per loopback connection)
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
        self.name = command[0]
        self.stderr_path = workdir / "agent.stderr"
        self.stdout_path = workdir / "agent.stdout"
        # The environment a user's shell gives it: stdout to a file is block-buffered.
        environment = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}
        self.process = subprocess.Popen(
            command,
            stdout=self.stdout_path.open("w"),
            stderr=self.stderr_path.open("w"),
            env=environment,
        )
        self.wait_until(lambda: ready(self._output()))

    def wait_until(self, ready: Callable[[], bool]) -> None:
        """Wait for ``ready()``; a tracer that exits or takes too long fails the bench."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError(f"{self.name} did not start:\n{self._output()}")
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


FILE_SINK = "events.msgpack"  # in the run's directory


def hostcore(
    workdir: Path,
    events: str,
    options: str = "",
    to_stdout: bool = False,
    executable: str = HOSTCORE,
) -> Agent:
    """``hostcore run``: to the file sink, or (``to_stdout``) as `make run` runs it, JSON
    lines on stdout, which the agent's stdout file takes."""
    config = workdir / "hostcore.toml"
    config.write_text(options)
    command = [executable, "run", "--events", events, "--config", str(config)]
    if not to_stdout:
        command += ["--sink", f"file:path={workdir / FILE_SINK}"]
    return Agent(command, lambda out: '"ready"' in out, workdir)


SETUPS: dict[str, Callable[[Path], Agent | None]] = {
    "no probe": lambda _: None,
    "hostcore begin (file)": lambda w: hostcore(w, "net_flow_tcp_begin"),
    "hostcore flows (file)": lambda w: hostcore(w, "flows"),
    "hostcore flows (stdout JSON, make run)": lambda w: hostcore(w, "flows", to_stdout=True),
    "hostcore flows + signatures (file)": lambda w: hostcore(
        w, "flows,signatures", SIGNATURE_OPTIONS
    ),
}


def baseline_setups(checkout: Path) -> dict[str, Callable[[Path], Agent | None]]:
    """The begin and flows rows (file, and stdout as `make run` prints), run by another
    checkout's hostcore (its own .venv), in the same rounds: a before/after comparison
    that machine drift cannot skew. Rows are labelled by the checkout's folder name."""
    executable = str(checkout / ".venv" / "bin" / "hostcore")
    if not os.access(executable, os.X_OK):
        raise SystemExit(f"bench: {executable} is missing: run `make setup` in {checkout}")
    label = f"@{checkout.name}"
    return {
        f"hostcore begin (file) {label}": lambda w: hostcore(
            w, "net_flow_tcp_begin", executable=executable
        ),
        f"hostcore flows (file) {label}": lambda w: hostcore(w, "flows", executable=executable),
        f"hostcore flows (stdout JSON, make run) {label}": lambda w: hostcore(
            w, "flows", to_stdout=True, executable=executable
        ),
    }


def tcpstates(workdir: Path) -> Agent:
    # SIGTERM: on SIGINT it first works through its backlog, which can take minutes.
    agent = Agent(["tcpstates-bpfcc"], lambda _: True, workdir, signal.SIGTERM)
    agent.wait_until(lambda: _attached(agent.process.pid))
    return agent


def _attached(pid: int) -> bool:
    """Whether process ``pid`` holds a perf event or BPF link: bcc attaches tracepoints
    through one. (Its header line, in a block-buffered file, comes much later.)"""
    fds = Path(f"/proc/{pid}/fd")
    try:
        targets = [os.readlink(fd) for fd in fds.iterdir()]
    except OSError:  # gone, or an fd closed meanwhile: asked again
        return False
    return any(t in ("anon_inode:[perf_event]", "anon_inode:bpf_link") for t in targets)


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
            "sink_drops.",
        )
        run.user_drops = sum(v for k, v in totals.items() if k.startswith(user_space))
        names = Counter(
            event["name"] for event in events_of(workdir) if event["data"].get("dst_port") == port
        )
        run.begins, run.ends = names["net_flow_tcp_begin"], names["net_flow_tcp_end"]
    else:
        run.kernel_drops = sum(int(n) for n in re.findall(r"[Ll]ost (\d+) samples", log))
    return run


def events_of(workdir: Path) -> Iterator[dict[str, Any]]:
    """The events a run wrote: the file sink's msgpack, or JSON lines on its stdout."""
    sink = workdir / FILE_SINK
    if sink.exists():
        with sink.open("rb") as stream:
            yield from msgpack.Unpacker(stream, raw=False)
        return
    with (workdir / "agent.stdout").open() as lines:
        yield from (json.loads(line) for line in lines)


def interval(values: Sequence[float], rounds: int = 2000) -> tuple[float, float, float]:
    """Median and a 95% percentile-bootstrap interval for it (fixed seed: reproducible)."""
    rng = random.Random(7)
    medians = sorted(statistics.median(rng.choices(values, k=len(values))) for _ in range(rounds))
    return statistics.median(values), medians[int(0.025 * rounds)], medians[int(0.975 * rounds)]


def cell(values: Sequence[float], fmt: str = "{:.0f}") -> str:
    mid, low, high = interval(values)
    return f"{fmt.format(mid)} [{fmt.format(low)}-{fmt.format(high)}]"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument(
        "--baseline",
        type=Path,
        action="append",
        default=[],
        help="another checkout (set up) whose hostcore rows run in the same rounds",
    )
    args = parser.parse_args(argv)
    if os.geteuid() != 0:
        print("bench: run as root (the probes need it)", file=sys.stderr)
        return 2
    tracing = Path("/sys/kernel/tracing")
    if tracing.is_dir() and not any(tracing.iterdir()):  # tcpstates-bpfcc needs tracefs
        subprocess.run(["mount", "-t", "tracefs", "tracefs", "/sys/kernel/tracing"], check=True)
    every = dict(SETUPS)
    for checkout in args.baseline:
        rows = baseline_setups(checkout.resolve())
        if rows.keys() & every.keys():
            raise SystemExit(f"bench: two baselines are named {checkout.name!r}")
        every.update(rows)
    setups = [Setup(name, start) for name, start in every.items()]
    setups.append(Setup("tcpstates-bpfcc", tcpstates))
    with tempfile.TemporaryDirectory() as tmp, nginx(Path(tmp)) as port:
        for round_number in range(1, args.rounds + 1):
            # Rotated, so that no setup always follows the same one (and its TIME_WAITs).
            shift = round_number % len(setups)
            for setup in setups[shift:] + setups[:shift]:
                setup.runs.append(measure(setup, port, args.connections, args.concurrency))
            line = "  ".join(f"{s.name} {s.runs[-1].rate:.0f}/s" for s in setups)
            print(f"round {round_number}/{args.rounds}: {line}", file=sys.stderr, flush=True)
    print(report(setups, args))
    print()
    print(pipeline_alone.report())
    return 0


def report(setups: list[Setup], args: argparse.Namespace) -> str:
    baseline = setups[0].runs
    lines = [
        f"hostcore bench: {args.rounds} interleaved rounds of {args.connections} connections, "
        f"ab -c {args.concurrency}, nginx on loopback; median [95% bootstrap interval]",
        "",
        "| setup | conn/s | ratio to no probe | agent CPU s / 10k conn | peak RSS MiB "
        "| begins / expected | ends / expected | kernel drops | user-space drops |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for setup in setups:
        runs = setup.runs
        ratios = [r.rate / b.rate for r, b in zip(runs, baseline, strict=True)]
        row = [setup.name, cell([r.rate for r in runs]), cell(ratios, "{:.2f}")]
        if setup.name == "no probe":
            row += ["-"] * 6
        else:
            cpu = [r.agent_cpu_s / r.connections * 10_000 for r in runs]
            row += [cell(cpu, "{:.3f}"), f"{max(r.peak_rss_kib for r in runs) / 1024:.0f}"]
            expected = sum(r.expected for r in runs)
            if setup.name.startswith("hostcore"):
                row.append(f"{sum(r.begins for r in runs)} / {expected}")
                ends = f"{sum(r.ends for r in runs)} / {expected}"
                row.append(ends if "begin " not in setup.name else "-")
                row.append(str(sum(r.kernel_drops for r in runs)))
                row.append(str(sum(r.user_drops for r in runs)))
            else:
                row += ["-", "-", f"{sum(r.kernel_drops for r in runs)} lost samples", "-"]
        lines.append("| " + " | ".join(row) + " |")
    lines += [
        "",
        "expected: twice the connections the host's listeners completed (Tcp PassiveOpens, "
        "host-wide) during the runs: a loopback connection begins and ends on both sockets.",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
