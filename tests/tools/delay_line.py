"""A delay line between two network namespaces: a TUN device in each, joined by this
program, which holds every packet a fixed time before passing it on (this kernel has no
netem, so the delay is made in user space).

Usage: delay_line.py NETNS_A ADDRESS_A NETNS_B ADDRESS_B DELAY_MS [drop-first-syn]
Each namespace gets a point-to-point device ``hcdelay`` (ADDRESS_A in NETNS_A, with
ADDRESS_B as its peer, and the other way round); "ready" is printed once both are up.
With ``drop-first-syn``, the first IPv4 SYN from each port of side A is lost, so its
kernel has to send it again. Runs until stdin closes.
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
IPPROTO_TCP = 6
SYN, ACK = 0x02, 0x10

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


def syn_port(packet: bytes) -> int | None:
    """The source port of an IPv4 TCP segment with SYN set and ACK clear, else None."""
    if len(packet) < 40 or packet[0] >> 4 != 4 or packet[9] != IPPROTO_TCP:
        return None
    tcp = (packet[0] & 0x0F) * 4
    if len(packet) < tcp + 14 or packet[tcp + 13] & (SYN | ACK) != SYN:
        return None
    return int.from_bytes(packet[tcp : tcp + 2], "big")


def forward(a: int, b: int, delay_s: float, drop_first_syn: bool) -> None:
    """Each packet read from one device is written to the other ``delay_s`` later."""
    other = {a: b, b: a}
    syns_dropped: set[int] = set()  # source ports on side A
    held: list[tuple[float, int, int, bytes]] = []  # due, arrival order, where to, packet
    arrivals = 0
    while True:
        timeout = max(0.0, held[0][0] - time.monotonic()) if held else None
        readable, _, _ = select.select([a, b, sys.stdin], [], [], timeout)
        if sys.stdin in readable and not sys.stdin.readline():
            return
        for fd in (a, b):
            if fd in readable:
                packet = os.read(fd, 65535)
                port = syn_port(packet) if drop_first_syn and fd == a else None
                if port is not None and port not in syns_dropped:
                    syns_dropped.add(port)
                    continue
                arrivals += 1
                heapq.heappush(held, (time.monotonic() + delay_s, arrivals, other[fd], packet))
        now = time.monotonic()
        while held and held[0][0] <= now:
            _, _, to, packet = heapq.heappop(held)
            os.write(to, packet)


def main() -> None:
    netns_a, address_a, netns_b, address_b, delay_ms = sys.argv[1:6]
    a = tun_in(netns_a, address_a, address_b)
    b = tun_in(netns_b, address_b, address_a)
    print("ready", flush=True)
    forward(a, b, float(delay_ms) / 1000, sys.argv[6:] == ["drop-first-syn"])


if __name__ == "__main__":
    main()
