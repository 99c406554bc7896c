"""`make soak`: memory under sustained load (a benchmark, not a test).

hostcore runs `--events flows` (DNS names included) for --duration seconds (10 minutes by
default) while connections arrive at a steady rate on loopback and a DNS server in a
network namespace answers a fresh name at a steady rate, so the flow table and the DNS
store fill and turn over. Prints hostcore's RSS at the start (once ready), every
--sample seconds and at the end, its peak, and the counters that show the bounds held
(DNS store chains and evictions, flow-table evictions) and that nothing was lost.
Run as root: `make soak` (or `.venv/bin/python tests/bench/soak.py --duration 60`).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from dns_server import SERVER, dns_netns  # noqa: E402
from runs import Hostcore  # noqa: E402
from traffic import TOOLS  # noqa: E402

from hostcore.pipeline.accounting import Accounting  # noqa: E402

ZONE = "soak.test"
STORE_SIZE = 4096  # smaller than the default, so that a short run turns the store over too
# dns_load.py asks for names whose addresses synth-domain makes up: one chain per address


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {field} for pid {pid}")


def load(command: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, stdout=subprocess.PIPE, text=True)


def stop(process: subprocess.Popen[str]) -> str:
    process.terminate()
    out, _ = process.communicate(timeout=30)
    return out.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="seconds of load")
    parser.add_argument("--connections", type=float, default=500, help="connections per second")
    parser.add_argument("--dns", type=float, default=200, help="DNS answers per second")
    parser.add_argument("--sample", type=float, default=60, help="seconds between RSS samples")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as workdir:
        work = Path(workdir)
        config = work / "hostcore.toml"
        config.write_text(f"stats_interval_s = 3600\n[dns]\nstore_size = {STORE_SIZE}\n")
        zone = [f"synth-domain={ZONE},127.8.0.0/16"]
        hostcore_args = ["--config", str(config), "--events", "flows"]
        with (
            dns_netns(zone, work) as netns,
            Hostcore(work, hostcore_args) as hostcore,
        ):
            assert hostcore.process is not None
            pid = hostcore.process.pid
            samples = [(0.0, rss_kib(pid))]
            connections = load([sys.executable, str(TOOLS / "burst.py"), str(10**12),
                                str(args.connections)])  # fmt: skip
            answers = load(["ip", "netns", "exec", netns, sys.executable,
                            str(TOOLS / "dns_load.py"), SERVER, ZONE, str(args.dns)])  # fmt: skip
            start = time.monotonic()
            while (elapsed := time.monotonic() - start) < args.duration:
                time.sleep(min(args.sample, args.duration - elapsed))
                samples.append((time.monotonic() - start, rss_kib(pid)))
            made, answered = stop(connections), stop(answers)
            peak = rss_kib(pid, "VmHWM")
            hostcore.events_path.unlink(missing_ok=True)  # only the totals matter here
            hostcore.stop()
        totals = hostcore.log("totals")
    print(f"soak: {args.duration:.0f} s, {made}, {answered}")
    for at, kib in samples:
        print(f"  RSS at {at:6.0f} s: {kib / 1024:7.1f} MiB")
    print(f"  RSS start -> end: {samples[0][1] / 1024:.1f} -> {samples[-1][1] / 1024:.1f} MiB, "
          f"peak {peak / 1024:.1f} MiB")  # fmt: skip
    for name in (
        "events.net_flow_tcp_begin",
        "dns.answers",
        "dns.chains",
        "dns.evictions",
        "net_flow_tcp_begin.identities_forgotten",
        "kernel_reserve_failures",
    ):
        print(f"  {name}: {totals.get(name, 0):,}")
    is_loss = Accounting(0).is_loss  # the core's losses; begin declares none
    lost = {name: value for name, value in totals.items() if is_loss(name) and value}
    print(f"  losses: {lost or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
