"""hostcore runs for live tests: ``hostcore run`` as a subprocess, the events it wrote,
and the multisets of flows a test compares them with."""

from __future__ import annotations

import contextlib
import ipaddress
import json
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import communityid
import msgpack
from bpf_programs import attached_programs, program_ids
from traffic import AcceptServer, connect_once, no_syncookies
from waiting import READY_TIMEOUT_S

BIN = Path(sys.executable).parent
HOSTCORE = str(BIN / "hostcore")

Flow = tuple[str, str, str, int, int]  # direction, src, dst, src_port, dst_port
COMMUNITY_ID = communityid.CommunityID()


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


def with_community_id(flow: Flow) -> tuple[Any, ...]:
    """``flow`` followed by its Community ID, from the communityid package (not hostcore's)."""
    _, src, dst, src_port, dst_port = flow
    return (*flow, COMMUNITY_ID.calc(communityid.FlowTuple.make_tcp(src, dst, src_port, dst_port)))


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
