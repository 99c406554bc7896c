"""A delay line between two network namespaces: a TUN device in each, joined by this
program, which holds every packet a fixed time before passing it on (this kernel has no
netem, so the delay is made in user space).

Usage: delay_line.py NETNS_A ADDRESS_A NETNS_B ADDRESS_B DELAY_MS
Each namespace gets a point-to-point device ``hcdelay`` (ADDRESS_A in NETNS_A, with
ADDRESS_B as its peer, and the other way round); "ready" is printed once both are up.
Runs until stdin closes.
"""

from __future__ import annotations

import ctypes
import fcntl
import heapq
import os
import select
import struct
import subprocess
import sys
import time

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
DEVICE = "hcdelay"

_libc = ctypes.CDLL(None, use_errno=True)


def tun_in(netns: str, address: str, peer: str) -> int:
    """A TUN device made in ``netns`` (entered for good: the next call enters another)."""
    namespace = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    if _libc.setns(namespace, CLONE_NEWNET) != 0:
        raise OSError(ctypes.get_errno(), f"cannot enter network namespace {netns}")
    os.close(namespace)
    tun = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(tun, TUNSETIFF, struct.pack("16sH", DEVICE.encode(), IFF_TUN | IFF_NO_PI))
    subprocess.run(["ip", "addr", "add", address, "peer", peer, "dev", DEVICE], check=True)
    subprocess.run(["ip", "link", "set", DEVICE, "up"], check=True)
    return tun


def forward(a: int, b: int, delay_s: float) -> None:
    """Each packet read from one device is written to the other ``delay_s`` later."""
    other = {a: b, b: a}
    held: list[tuple[float, int, int, bytes]] = []  # due, arrival order, where to, packet
    arrivals = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([a, b, sys.stdin], [], [], timeout)
        if sys.stdin in readable and not sys.stdin.readline():
            return
        for fd in (a, b):
            if fd in readable:
                arrivals += 1
                heapq.heappush(
                    held, (time.monotonic() + delay_s, arrivals, other[fd], os.read(fd, 65535))
                )
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, to, packet = heapq.heappop(held)
            os.write(to, packet)


def main() -> None:
    netns_a, address_a, netns_b, address_b, delay_ms = sys.argv[1:]
    a = tun_in(netns_a, address_a, address_b)
    b = tun_in(netns_b, address_b, address_a)
    print("ready", flush=True)
    forward(a, b, float(delay_ms) / 1000)


if __name__ == "__main__":
    main()
