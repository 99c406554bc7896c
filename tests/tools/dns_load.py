"""DNS answers at a steady rate: a fresh name and address each query, so a DNS store fills.

usage: dns_load.py SERVER ZONE RATE
Asks SERVER (UDP port 53) for the A record of 127-8-X-Y.ZONE (X, Y counting through
0-255: a name dnsmasq's synth-domain=ZONE,127.8.0.0/16 answers with 127.8.X.Y), RATE
queries a second, until SIGTERM; then prints 'answers N' (responses received).
"""

from __future__ import annotations

import signal
import socket
import struct
import sys
import time

TIMEOUT_S = 1.0


def query(number: int, zone: str) -> bytes:
    labels = [f"127-8-{number >> 8 & 0xFF}-{number & 0xFF}", *zone.split(".")]
    name = b"".join(bytes([len(label)]) + label.encode() for label in labels) + b"\0"
    return struct.pack("!HHHHHH", number & 0xFFFF, 0x0100, 1, 0, 0, 0) + name + b"\0\1\0\1"


def main() -> None:
    server, zone, rate = sys.argv[1], sys.argv[2], float(sys.argv[3])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit())
    answers = 0
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(TIMEOUT_S)
            client.connect((server, 53))
            start = time.monotonic()
            number = 0
            while True:
                if (wait := start + number / rate - time.monotonic()) > 0:
                    time.sleep(wait)
                client.send(query(number, zone))
                try:
                    client.recv(2048)
                    answers += 1
                except TimeoutError:
                    pass
                number += 1
    finally:
        print("answers", answers, flush=True)


if __name__ == "__main__":
    main()
