"""Connect to HOST PORT and hold the connection until a line comes on stdin.

Prints 'connected IP PORT' (its own end) once connected; then, on a line,
sends an HTTP/1.0 request, reads until the server closes, closes, prints 'closed'.
"""

from __future__ import annotations

import socket
import sys


def main() -> None:
    host, port = sys.argv[1], int(sys.argv[2])
    with socket.create_connection((host, port)) as client:
        address, local_port = client.getsockname()[:2]
        print(f"connected {address} {local_port}", flush=True)
        sys.stdin.readline()
        client.sendall(b"GET / HTTP/1.0\r\n\r\n")
        while client.recv(65536):
            pass
    print("closed", flush=True)


if __name__ == "__main__":
    main()
