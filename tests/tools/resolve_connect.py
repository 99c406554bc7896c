"""Resolve names with the system resolver (getaddrinfo), then connect to what they name.

usage: resolve_connect.py PORT NAME... [--wait]

Each name is resolved and connected to at once; with --wait, every name is
resolved first, 'resolved' is printed, and the connections wait for a line on
stdin. Prints one line per connection: NAME LOCAL_IP LOCAL_PORT REMOTE_IP REMOTE_PORT.
"""

from __future__ import annotations

import socket
import sys


def resolve(name: str, port: int) -> tuple[int, tuple[str, int]]:
    family, _, _, _, address = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0]
    return family, address[:2]


def connect(name: str, family: int, address: tuple[str, int]) -> None:
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.connect(address)
        local = client.getsockname()
        print(name, local[0], local[1], address[0], address[1], flush=True)


def main() -> None:
    port, names = int(sys.argv[1]), [a for a in sys.argv[2:] if a != "--wait"]
    if "--wait" in sys.argv:
        resolved = [(name, *resolve(name, port)) for name in names]
        print("resolved", flush=True)
        sys.stdin.readline()
        for name, family, address in resolved:
            connect(name, family, address)
    else:
        for name in names:
            connect(name, *resolve(name, port))


if __name__ == "__main__":
    main()
