"""Shared helpers for live tests: run hostcore, real servers and clients, oracles."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import msgpack
from prometheus_client.parser import text_string_to_metric_families

from hostcore import cli

BIN = Path(sys.executable).parent
HOSTCORE = str(BIN / "hostcore")
TOOLS = Path(__file__).parent / "tools"
READY_TIMEOUT_S = 60
BACKLOG = 4096

Flow = tuple[str, str, str, int, int]  # direction, src, dst, src_port, dst_port
T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout_s: float = 30) -> T:
    """Poll ``condition`` until it returns something true, and return that; fail naming
    ``what`` if it does not within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while not (result := condition()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
    return result


def plain_ip(text: str) -> str:
    """An address as the probe reports it: IPv4-mapped IPv6 becomes IPv4."""
    address = ipaddress.ip_address(text.split("%")[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return str(address.ipv4_mapped)
    return str(address)


def both_ends(client: str, client_port: int, server: str, server_port: int) -> list[Flow]:
    """The two begin events one connection between two local sockets gives."""
    src, dst = plain_ip(client), plain_ip(server)
    return [
        ("outgoing", src, dst, client_port, server_port),
        ("incoming", src, dst, client_port, server_port),
    ]


def flows(
    events: Iterable[dict[str, Any]],
    ports: set[int],
    name: str = "net_flow_tcp_begin",
    extra: tuple[str, ...] = (),
) -> Counter[tuple[Any, ...]]:
    """The multiset of ``name`` events touching ``ports`` (other host traffic is ignored),
    each as (direction, src, dst, src_port, dst_port) followed by its ``extra`` data fields."""
    found: Counter[tuple[Any, ...]] = Counter()
    for event in events:
        data = event["data"]
        if event["name"] == name and {data["src_port"], data["dst_port"]} & ports:
            found[
                (
                    data["conn_direction"],
                    data["src"],
                    data["dst"],
                    data["src_port"],
                    data["dst_port"],
                    *(data[field] for field in extra),
                )
            ] += 1
    return found


def syncookies_sent() -> int:
    """TcpExt SyncookiesSent: a SYN cookie's SYN+ACK has no socket, so the probe cannot see it."""
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=True):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True))["SyncookiesSent"])
    raise RuntimeError("no TcpExt line in /proc/net/netstat")


@contextlib.contextmanager
def no_syncookies() -> Iterator[None]:
    before = syncookies_sent()
    yield
    assert syncookies_sent() == before, "SYN cookies were sent: the probe cannot see those"


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of a msgpack stream (a file sink's output); it must read to its end."""
    with path.open("rb") as stream:
        return list(msgpack.Unpacker(stream, raw=False))


@dataclass
class Hostcore:
    """A ``hostcore run`` subprocess writing to a file sink; events are read after it stops."""

    workdir: Path
    args: list[str] = field(default_factory=list)
    env: dict[str, str] | None = None
    cli_sink: bool = True  # False: the config file names the sink, writing to events_path
    stdout_path: Path | None = None  # where its standard output goes (the stdout sink's)
    process: subprocess.Popen[str] | None = None
    logs: list[dict[str, Any]] = field(default_factory=list)
    stderr_lines: list[str] = field(default_factory=list)
    _ready: threading.Event = field(default_factory=threading.Event)
    _reader: threading.Thread | None = None

    @property
    def events_path(self) -> Path:
        return self.workdir / f"events-{id(self)}.msgpack"

    def start(self) -> Hostcore:
        sink = ["--sink", f"file:path={self.events_path}"] if self.cli_sink else []
        command = [HOSTCORE, "run", *sink, *self.args]
        stdout = self.stdout_path.open("w") if self.stdout_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            command,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        if not isinstance(stdout, int):
            stdout.close()  # the child has its own descriptor
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        if not self._ready.wait(READY_TIMEOUT_S) or self.process.poll() is not None:
            self.process.kill()
            raise AssertionError(f"hostcore never became ready:\n{''.join(self.stderr_lines)}")
        return self

    def _read_stderr(self) -> None:
        assert self.process is not None and self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)
            with contextlib.suppress(json.JSONDecodeError):
                self.logs.append(json.loads(line))
                if self.logs[-1].get("event") == "ready":
                    self._ready.set()
        self._ready.set()  # exited: wake start() to report it

    def send(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def stop(self, signum: int = signal.SIGINT) -> list[dict[str, Any]]:
        """Signal hostcore, wait for it, and return every event it wrote."""
        assert self.process is not None
        self.process.send_signal(signum)
        code = self.process.wait(timeout=60)
        assert self._reader is not None
        self._reader.join(timeout=60)  # every log line, totals included, is read
        if signum != signal.SIGKILL:
            assert code == 0, f"hostcore exited {code}:\n{''.join(self.stderr_lines)}"
        return self.events()

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.events_path) if self.events_path.exists() else []

    def attached(self, cgroup_root: str) -> Counter[str]:
        """Names of this run's programs attached under ``cgroup_root``, by count."""
        assert self.process is not None
        ids = program_ids(self.process.pid)
        return Counter(n for i, n in attached_programs(cgroup_root).items() if i in ids)

    def log(self, name: str) -> dict[str, Any]:
        return next(entry for entry in self.logs if entry.get("event") == name)

    def __enter__(self) -> Hostcore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


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
            self.peers.append((peer[0], peer[1]))
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


@dataclass
class StdoutRun:
    """What one connection gave a ``hostcore run`` writing to standard output."""

    lines: list[dict[str, Any]]  # stdout, one JSON object per line
    stderr: str
    server_port: int
    client: tuple[str, int]


def one_connection_on_stdout(args: list[str]) -> StdoutRun:
    """Run ``hostcore run ARGS`` (default sink: stdout), make one loopback connection once
    it is ready, stop it with SIGINT; it must exit 0."""
    process = subprocess.Popen(
        [HOSTCORE, "run", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:
            if '"event": "ready"' in line:
                break
        with AcceptServer() as server, no_syncookies():
            client = connect_once("127.0.0.1", server.port)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    return StdoutRun([json.loads(line) for line in out.splitlines()], err, server.port, client)


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


def attached_program_names(cgroup_root: str) -> list[str]:
    """Names of every BPF program attached anywhere under ``cgroup_root`` (bpftool)."""
    return list(attached_programs(cgroup_root).values())


HOSTCORE_PROGRAMS = frozenset(
    {
        "hc_flow_ingress",
        "hc_flow_egress",
        "hc_sock_create",
        "hc_connect4",
        "hc_connect6",
        "hc_post_bind4",
        "hc_post_bind6",
    }
)


def attached_programs(cgroup_root: str) -> dict[int, str]:
    """Every BPF program attached anywhere under ``cgroup_root``: id -> name (bpftool)."""
    out = subprocess.run(
        ["bpftool", "-j", "cgroup", "tree", cgroup_root],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return {
        program["id"]: program.get("name", "")
        for entry in json.loads(out or "[]")
        for program in entry.get("programs", [])
    }


def program_ids(pid: int) -> set[int]:
    """Ids of the BPF programs process ``pid`` holds through its file descriptors (its
    links, its loaded programs): a test can follow its own run's programs whatever other
    runs on the host attach or detach meanwhile."""
    ids = set()
    for info in Path(f"/proc/{pid}/fdinfo").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed meanwhile
            for line in info.read_text().splitlines():
                if line.startswith("prog_id:"):
                    ids.add(int(line.split()[1]))
    return ids


def hostcore_programs(cgroup_root: str) -> Counter[str]:
    """How many of hostcore's programs are attached under ``cgroup_root``, by name."""
    return Counter(n for n in attached_program_names(cgroup_root) if n in HOSTCORE_PROGRAMS)


@contextlib.contextmanager
def nginx(workdir: Path) -> Iterator[int]:
    """A real nginx on 127.0.0.1 and [::1] with a large backlog; yields its port.

    Ready once its pid file exists: nginx writes it after opening its listening sockets.
    """
    port = free_port()
    conf = workdir / "nginx.conf"
    pid = workdir / "nginx.pid"
    conf.write_text(
        f"""
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


class ListSink:
    """A sink that keeps the event maps it is given, for tests that run a Pipeline."""

    def __init__(self) -> None:
        self.events: list[Mapping[str, Any]] = []

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        self.events.append(msgpack.unpackb(packed, raw=False))
        assert self.events[-1] == event  # what was packed is the map, nothing more

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


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


def fake_distribution(where: Path, plugin: str, module_text: str) -> None:
    """An installed distribution ``hostcore-<plugin>`` whose entry point is ``plugin``."""
    (where / f"{plugin}_plugin.py").write_text(textwrap.dedent(module_text))
    dist_info = where / f"hostcore_{plugin}-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: hostcore-{plugin}\nVersion: 0.1\n"
    )
    (dist_info / "entry_points.txt").write_text(f"[hostcore]\n{plugin} = {plugin}_plugin\n")


def replay(workdir: Path, *args: str) -> list[dict[str, Any]]:
    """Run ``hostcore replay ARGS`` in this process; the events it wrote to a file sink."""
    out = workdir / "replayed.msgpack"
    out.unlink(missing_ok=True)
    status = cli.main(
        ["replay", *args, "--events", "net_flow_tcp_begin", "--sink", f"file:path={out}"]
    )
    assert status == 0
    with out.open("rb") as stream:
        return list(msgpack.Unpacker(stream, raw=False))


@contextlib.contextmanager
def tcpdump(path: Path, netns: str, interface: str = "any") -> Iterator[None]:
    """tcpdump writing TCP packets to ``path`` inside ``netns`` until the block ends."""
    command = [
        "ip",
        "netns",
        "exec",
        netns,
        "tcpdump",
        "-i",
        interface,
        "--immediate-mode",  # else the kernel hands packets over in blocks, maybe after SIGINT
        "-U",
        "-n",
        "-w",
        str(path),
    ]
    process = subprocess.Popen([*command, "tcp"], stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr is not None
        said = []
        for line in process.stderr:  # tcpdump says "listening on" once it captures
            said.append(line)
            if "listening on" in line:
                break
        else:
            raise AssertionError(f"tcpdump did not start: {''.join(said)}")
        yield
    finally:
        process.send_signal(signal.SIGINT)  # it writes what it holds, then exits
        process.wait(timeout=30)


def scrape(url: str) -> dict[tuple[str, str], float]:
    """Samples of a /metrics page by (metric family, its ``name`` label)."""
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (family.name, sample.labels["name"]): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name.endswith("_total")
    }
