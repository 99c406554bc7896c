"""Real traffic for live tests: servers (Python sockets, tests/tools/http_server.py,
nginx) and clients (Python sockets, curl, tests/tools/burst.py), the netns or cgroup they
run in, free ports, and the guard that no SYN cookie was sent."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from waiting import READY_TIMEOUT_S

TOOLS = Path(__file__).parent / "tools"
BACKLOG = 4096


def syncookies_sent(netns: str | None = None) -> int:
    """TcpExt SyncookiesSent in ``netns`` (default: this process's network namespace; each
    counts its own): a SYN cookie's SYN+ACK has no socket, so the probe cannot see it."""
    if netns:
        command = ["ip", "netns", "exec", netns, "cat", "/proc/net/netstat"]
        text = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    else:
        text = Path("/proc/net/netstat").read_text()
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["SyncookiesSent"])
    raise RuntimeError("no TcpExt line in /proc/net/netstat")


@contextlib.contextmanager
def no_syncookies(netns: str | None = None) -> Iterator[None]:
    """No SYN cookie was sent while the block ran by the listeners of ``netns`` (default:
    this process's network namespace): pass the namespace the test's servers listen in."""
    before = syncookies_sent(netns)
    yield
    assert syncookies_sent(netns) == before, "SYN cookies were sent: the probe cannot see those"


class AcceptServer:
    """A listening socket whose thread accepts, records the peer, and closes first.

    Closing first leaves TIME_WAIT on the server side, so clients can reuse ports.
    """

    def __init__(self, host: str = "127.0.0.1", family: int = socket.AF_INET) -> None:
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        if family == socket.AF_INET6 and host == "::":
            self.sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(BACKLOG)
        self.port: int = self.sock.getsockname()[1]
        self.peers: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, peer = self.sock.accept()
            except OSError:
                return
            self.took(conn, (peer[0], peer[1]))

    def took(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        """What is done with each accepted connection: recorded, then closed."""
        self.peers.append(peer)
        conn.close()

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join()

    def __enter__(self) -> AcceptServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def connect_once(
    host: str, port: int, family: int = socket.AF_INET, bind_port: int = 0
) -> tuple[str, int]:
    """One full connection from a Python socket; returns the client's (address, port)."""
    with socket.socket(family, socket.SOCK_STREAM) as client:
        if bind_port:
            client.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            client.bind(("::" if family == socket.AF_INET6 else "0.0.0.0", bind_port))
        client.connect((host, port))
        local = client.getsockname()
        client.recv(1)  # the server closes first: wait for its FIN
    return local[0], local[1]


@contextlib.contextmanager
def connected_pair() -> Iterator[tuple[socket.socket, socket.socket, socket.socket]]:
    """A loopback listener and one connection to it: (listener, client, accepted socket)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(BACKLOG)
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
        with client, accepted:
            yield listener, client, accepted


@contextlib.contextmanager
def http_server(
    host: str, netns: str | None = None, directory: Path | None = None
) -> Iterator[int]:
    """tests/tools/http_server.py in a subprocess (optionally in a netns), serving the files
    of ``directory`` (default: the current one); yields its port."""
    with http_servers(host, 1, netns, directory) as (ports, _):
        yield ports[0]


@contextlib.contextmanager
def http_server_process(host: str, netns: str | None = None) -> Iterator[tuple[int, int]]:
    """The same server; yields its port and its pid."""
    with http_servers(host, 1, netns) as (ports, pid):
        yield ports[0], pid


@contextlib.contextmanager
def http_servers(
    host: str, count: int, netns: str | None = None, directory: Path | None = None
) -> Iterator[tuple[list[int], int]]:
    """``count`` servers on as many ports in one process; yields the ports and its pid."""
    command = [sys.executable, str(TOOLS / "http_server.py"), host, str(count)]
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=directory)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # printed once the sockets listen
        assert line.startswith("listening "), f"http server did not start: {line!r}"
        yield [int(port) for port in line.split()[1:]], process.pid
    finally:
        process.terminate()
        process.wait()


def curl(
    url: str, netns: str | None = None, cgroup: Path | None = None, uid: int | None = None
) -> tuple[str, int, str, int]:
    """One real curl request, optionally from a netns, a cgroup v2 directory, or as a user.

    Returns (local ip, local port, remote ip, remote port) as curl saw them.
    """
    as_user = (
        [] if uid is None else ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
    )
    command = [
        *as_user,
        "curl",
        "-sS",
        "--noproxy",
        "*",
        "-o",
        "/dev/null",
        "-w",
        "%{local_ip} %{local_port} %{remote_ip} %{remote_port}",
        url,
    ]
    out = subprocess.run(
        in_place(command, netns, cgroup), check=True, capture_output=True, text=True, timeout=30
    ).stdout
    local_ip, local_port, remote_ip, remote_port = out.split()
    return local_ip, int(local_port), remote_ip, int(remote_port)


def burst(cgroup: Path, count: int, rate: float = 0) -> tuple[int, int]:
    """tests/tools/burst.py inside ``cgroup`` (``rate`` connections a second, or as fast
    as it can): (completed connections, its server port)."""
    paced = [str(rate)] if rate else []
    command = [sys.executable, str(TOOLS / "burst.py"), str(count), *paced]
    command = in_place(command, None, cgroup)
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=120).stdout
    _, completed, port = out.split()
    return int(completed), int(port)


def in_place(command: list[str], netns: str | None, cgroup: Path | None) -> list[str]:
    """``command`` run in a netns and/or a cgroup v2 directory.

    The cgroup is joined first: `ip netns exec` mounts the netns's own /sys,
    where the cgroup directory would not be found.
    """
    if netns:
        command = ["ip", "netns", "exec", netns, *command]
    if cgroup:
        join = f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"'
        command = ["sh", "-c", join, "sh", *command]
    return command


@contextlib.contextmanager
def nginx(workdir: Path, files: Path | None = None) -> Iterator[int]:
    """A real nginx on 127.0.0.1 and [::1] with a large backlog; yields its port.

    It answers "ok" to every path; with ``files``, it serves that folder's files under /files/
    (its workers then run as root, so that they may read a test's temporary folder).

    Ready once its pid file exists: nginx writes it after opening its listening sockets.
    """
    port = free_port()
    conf = workdir / "nginx.conf"
    pid = workdir / "nginx.pid"
    conf.write_text(
        f"""
        {"user root;" if files else ""}
        pid {pid};
        error_log {workdir}/error.log;
        events {{ worker_connections 1024; }}
        http {{
            access_log off;
            client_body_temp_path {workdir}; proxy_temp_path {workdir};
            fastcgi_temp_path {workdir}; uwsgi_temp_path {workdir}; scgi_temp_path {workdir};
            server {{
                listen 127.0.0.1:{port} backlog={BACKLOG};
                listen [::1]:{port} backlog={BACKLOG};
                location / {{ return 200 "ok\\n"; }}
                {f"location /files/ {{ alias {files}/; }}" if files else ""}
            }}
        }}
        """
    )
    process = subprocess.Popen(
        ["nginx", "-p", str(workdir), "-c", str(conf), "-g", "daemon off;"],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not pid.exists():
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.01)
        yield port
    finally:
        process.terminate()
        process.wait()


def free_port() -> int:
    """A TCP port free right now on both 127.0.0.1 and ::1."""
    while True:
        with socket.socket() as v4, socket.socket(socket.AF_INET6) as v6:
            v4.bind(("127.0.0.1", 0))
            port: int = v4.getsockname()[1]
            try:
                v6.bind(("::1", port))
            except OSError:
                continue
            return port


# States of a socket not closed yet (FIN-WAIT-2 is not among them: a socket whose
# program closed it waits there as a timewait socket, closed for its counters).
OPEN_STATES = (
    "established",
    "syn-sent",
    "syn-recv",
    "fin-wait-1",
    "close-wait",
    "last-ack",
    "closing",
)


def closing_sockets(port: int, netns: str | None = None) -> list[str]:
    """Sockets of connections on ``port`` in ``netns`` (default: this one) not closed yet (ss)."""
    states = [word for state in OPEN_STATES for word in ("state", state)]
    command = in_place(["ss", "-Htn", *states], netns, None)
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if f":{port} " in f"{line} "]
