"""A real DNS server (Debian's dnsmasq) in a network namespace of the test's own."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

SERVER = "127.0.0.53"  # on the namespace's own loopback
SERVER6 = "::1"  # the same server over IPv6
IPV6_ADDRESS = "fd00::2"  # put on the namespace's loopback, for AAAA names
READY_TIMEOUT_S = 10


def _dig_status(netns: str, name: str) -> str:
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "dig", "+tries=1", "+time=1", f"@{SERVER}", name],
        capture_output=True,
        text=True,
    )
    for line in result.stdout.splitlines():
        if "status:" in line:
            return line.split("status:")[1].split(",")[0].strip()
    return ""


def dig(netns: str, name: str, *options: str, server: str = SERVER) -> list[str]:
    """``dig +short`` in ``netns``: the answer's values, split on white space."""
    command = ["ip", "netns", "exec", netns, "dig", "+short", f"@{server}", *options, name]
    return subprocess.run(command, check=True, capture_output=True, text=True).stdout.split()


@contextlib.contextmanager
def dns_netns(zone: list[str], workdir: Path) -> Iterator[str]:
    """A netns whose resolv.conf points at a dnsmasq serving ``zone`` (dnsmasq config lines).

    Yields the netns name once the server answers. Nothing outside the
    namespace changes except /etc/netns/NAME, which `ip netns exec` mounts
    over /etc/resolv.conf inside it, and which is removed afterwards.
    """
    netns = f"hc-dns-{os.getpid()}"
    etc = Path("/etc/netns") / netns
    config = workdir / "dnsmasq.conf"
    config.write_text("\n".join([*zone, "host-record=ready.test,127.0.0.99", ""]))
    subprocess.run(["ip", "netns", "add", netns], check=True)
    server = None
    try:
        subprocess.run(["ip", "-n", netns, "link", "set", "lo", "up"], check=True)
        subprocess.run(
            ["ip", "-n", netns, "addr", "add", f"{IPV6_ADDRESS}/128", "dev", "lo", "nodad"],
            check=True,
        )
        etc.mkdir(parents=True)
        (etc / "resolv.conf").write_text(f"nameserver {SERVER}\n")
        server = subprocess.Popen(
            ["ip", "netns", "exec", netns, "dnsmasq", "--keep-in-foreground",
             f"--conf-file={config}", "--no-resolv", "--no-hosts", "--bind-interfaces",
             f"--listen-address={SERVER},{SERVER6}", "--port=53", "--user=root", "--local-ttl=300",
             "--cache-size=0", f"--pid-file={workdir / 'dnsmasq.pid'}"],
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        deadline = time.monotonic() + READY_TIMEOUT_S
        while _dig_status(netns, "ready.test") != "NOERROR":
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                raise AssertionError(f"dnsmasq did not answer: {server.communicate()[1]}")
        yield netns
    finally:
        if server is not None:
            server.terminate()
            server.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False)
        shutil.rmtree(etc, ignore_errors=True)
