"""A real HTTP server with a large backlog: prints 'listening PORT' once it listens."""

from __future__ import annotations

import socket
import sys
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    request_queue_size = 4096  # large: a full backlog would make the kernel send SYN cookies


class V6Server(Server):
    address_family = socket.AF_INET6


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    host = sys.argv[1]
    server_class = V6Server if ":" in host else Server
    server = server_class((host, 0), Quiet)
    print(f"listening {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
