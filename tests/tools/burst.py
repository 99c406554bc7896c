"""A burst of loopback connections, both ends in this process: a load with a known count.

usage: burst.py COUNT
Listens on 127.0.0.1 (large backlog), connects COUNT times as fast as it can, accepting
and closing each, and prints 'connections N PORT': N completed handshakes, each of which
the server answered with one SYN+ACK.
"""

from __future__ import annotations

import socket
import sys

BACKLOG = 4096


def main() -> None:
    count = int(sys.argv[1])
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(BACKLOG)
        port = server.getsockname()[1]
        completed = 0
        for _ in range(count):
            with socket.create_connection(("127.0.0.1", port)) as client:
                completed += 1
                accepted, _ = server.accept()
                accepted.close()
                client.close()
    print("connections", completed, port, flush=True)


if __name__ == "__main__":
    main()
