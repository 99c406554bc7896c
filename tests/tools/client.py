"""A TCP client for context tests: connects once, in one of several process shapes.

usage: client.py MODE HOST PORT
  connect              connect, then exit at once
  fork-after-connect   connect, then fork; the child closes the socket last
  connect-in-child     create the socket, fork, and connect in the child
Prints 'connected PID LOCAL_PORT' from the process that called connect, and
'parent PID' / 'child PID' for the others.
"""

from __future__ import annotations

import os
import socket
import sys


def main() -> None:
    mode, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    client = socket.socket(family, socket.SOCK_STREAM)
    if mode == "connect-in-child":
        child = os.fork()
        if child == 0:
            client.connect((host, port))
            print("connected", os.getpid(), client.getsockname()[1], flush=True)
            os._exit(0)
        os.waitpid(child, 0)  # then print: two processes writing one pipe may interleave
        print("parent", os.getpid(), flush=True)
        return
    client.connect((host, port))
    print("connected", os.getpid(), client.getsockname()[1], flush=True)
    if mode == "fork-after-connect":
        child = os.fork()
        if child == 0:
            print("child", os.getpid(), flush=True)
            client.close()
            os._exit(0)
        os.waitpid(child, 0)
    client.close()


if __name__ == "__main__":
    main()
