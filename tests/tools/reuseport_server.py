"""One of several SO_REUSEPORT listeners on one port: prints 'listening PORT', then
'accepted CLIENT_PORT' for each connection the kernel gave it.

usage: reuseport_server.py PORT   (0: choose one; the others then use it)
"""

from __future__ import annotations

import socket
import sys

with socket.socket() as server:
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    server.bind(("127.0.0.1", int(sys.argv[1])))
    server.listen(4096)
    print("listening", server.getsockname()[1], flush=True)
    while True:
        client, (_, client_port) = server.accept()
        print("accepted", client_port, flush=True)
        client.close()
