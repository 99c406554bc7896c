"""Real HTTP servers with a large backlog: prints 'listening PORT...' once they listen.

usage: http_server.py HOST [COUNT]   (COUNT servers on as many ports, default 1)
"""

from __future__ import annotations

import socket
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Server(ThreadingHTTPServer):
    request_queue_size = 4096  # large: a full backlog would make the kernel send SYN cookies


class V6Server(Server):
    address_family = socket.AF_INET6


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def main() -> None:
    host, count = sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1
    server_class = V6Server if ":" in host else Server
    servers = [server_class((host, 0), Quiet) for _ in range(count)]
    print("listening", *(server.server_address[1] for server in servers), flush=True)
    for server in servers[1:]:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    servers[0].serve_forever()


if __name__ == "__main__":
    main()
