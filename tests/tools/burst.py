"""A burst of loopback connections, both ends in this process: a load with a known count.

usage: burst.py COUNT [RATE]
Listens on 127.0.0.1 (large backlog), connects COUNT times as fast as it can (or RATE
times a second), accepting and closing each, and prints 'connections N PORT': N completed
handshakes, each of which the server answered with one SYN+ACK. SIGTERM ends it early,
printing the same line.
"""

from __future__ import annotations

import signal
import socket
import sys
import time

BACKLOG = 4096


def main() -> None:
    count = int(sys.argv[1])
    period_s = 1 / float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit())  # exits through the finally below
    completed = port = 0
    try:
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            server.listen(BACKLOG)
            port = server.getsockname()[1]
            start = time.monotonic()
            for number in range(count):
                if period_s and (wait := start + number * period_s - time.monotonic()) > 0:
                    time.sleep(wait)
                with socket.create_connection(("127.0.0.1", port)) as client:
                    completed += 1
                    accepted, _ = server.accept()
                    accepted.close()
                    client.close()
    finally:
        print("connections", completed, port, flush=True)


if __name__ == "__main__":
    main()
