"""Process context on begin events from the real probe: who connected, who listened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CONTAINER_ID
from runs import Hostcore
from traffic import TOOLS, curl, http_server_process, nginx, no_syncookies

from hostcore.probe.cgroup import cgroup2_mount
from hostcore.probe.sockets import parent_pid

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

PYTHON_COMM = Path(sys.executable).name[:15]  # a thread's comm is its program's name
NOBODY = 65534


def by_client(events: list[dict[str, Any]], port: int) -> dict[tuple[str, int], dict[str, Any]]:
    """(direction, client port) -> context, for the begin events of the server on ``port``."""
    found: dict[tuple[str, int], dict[str, Any]] = {}
    for event in events:
        data = event["data"]
        if event["name"] == "net_flow_tcp_begin" and data["dst_port"] == port:
            key = (data["conn_direction"], data["src_port"])
            assert key not in found, f"two events for {key}"
            found[key] = event["context"]
    return found


def run_client(mode: str, port: int) -> dict[str, int]:
    """tests/tools/client.py: its lines as {role: pid}, plus 'port': the client port."""
    command = [sys.executable, str(TOOLS / "client.py"), mode, "127.0.0.1", str(port)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, timeout=30).stdout
    roles: dict[str, int] = {}
    for line in out.splitlines():
        role, pid, *rest = line.split()
        roles[role] = int(pid)
        if rest:
            roles["port"] = int(rest[0])
    return roles


def test_curl_and_the_python_server_each_own_their_end(tmp_path: Path) -> None:
    with Hostcore(tmp_path) as hostcore, http_server_process("127.0.0.1") as (port, server):
        with no_syncookies():
            curl_run = subprocess.Popen(
                [
                    "curl",
                    "-sS",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{local_port}",
                    f"http://127.0.0.1:{port}/",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            client_port = int(curl_run.communicate(timeout=30)[0])
        events = hostcore.stop()
    contexts = by_client(events, port)
    outgoing, incoming = contexts[("outgoing", client_port)], contexts[("incoming", client_port)]
    assert (outgoing["pid"], outgoing["comm"], outgoing["uid"]) == (curl_run.pid, "curl", 0)
    assert outgoing["owner"] == "connected" and outgoing["tid"] == curl_run.pid
    assert (incoming["pid"], incoming["comm"], incoming["uid"]) == (server, PYTHON_COMM, 0)
    assert incoming["owner"] == "bound"
    root = os.stat(cgroup2_mount()).st_ino  # a cgroup's id is its directory's inode
    assert outgoing["cgroup_id"] == incoming["cgroup_id"] == root
    assert outgoing["container_id"] == incoming["container_id"] == ""


def test_a_listener_older_than_hostcore_is_found_through_proc(tmp_path: Path) -> None:
    with http_server_process("127.0.0.1") as (port, server), Hostcore(tmp_path) as hostcore:
        client = run_client("connect", port)
        events = hostcore.stop()
    incoming = by_client(events, port)[("incoming", client["port"])]
    assert (incoming["pid"], incoming["tid"], incoming["owner"]) == (server, None, "found")


@pytest.mark.parametrize(
    "mode",
    [
        "connect",  # exits at once: nothing is left in /proc to look up
        "fork-after-connect",  # the parent called connect; the child holds the socket too
        "connect-in-child",  # the parent created the socket; the child called connect
    ],
)
def test_the_process_that_called_connect_is_reported(tmp_path: Path, mode: str) -> None:
    with Hostcore(tmp_path) as hostcore, http_server_process("127.0.0.1") as (port, _):
        client = run_client(mode, port)
        events = hostcore.stop()
    outgoing = by_client(events, port)[("outgoing", client["port"])]
    assert (outgoing["pid"], outgoing["comm"]) == (client["connected"], PYTHON_COMM)
    assert outgoing["pid"] not in {client.get("parent"), client.get("child")}
    assert outgoing["owner"] == "connected"


def test_nginx_master_owns_what_its_workers_accept(tmp_path: Path) -> None:
    with Hostcore(tmp_path) as hostcore, nginx(tmp_path) as port, no_syncookies():
        master = int((tmp_path / "nginx.pid").read_text())
        workers = [pid for pid in _pids() if _parent_or_none(pid) == master]
        ports = [curl(f"http://127.0.0.1:{port}/")[1] for _ in range(5)]
        events = hostcore.stop()
    assert workers, "nginx started no worker: the test would not show whom it names"
    contexts = by_client(events, port)
    for client_port in ports:
        incoming = contexts[("incoming", client_port)]
        assert (incoming["pid"], incoming["comm"], incoming["owner"]) == (master, "nginx", "bound")


def _pids() -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if entry.name.isdigit()]


def _parent_or_none(pid: int) -> int | None:
    try:
        return parent_pid(pid)
    except (OSError, IndexError, ValueError):  # exited meanwhile
        return None


def test_each_so_reuseport_listener_owns_its_own_connections(tmp_path: Path) -> None:
    """The kernel spreads connections over the listeners; each event names the one it chose."""
    with Hostcore(tmp_path) as hostcore, no_syncookies():
        servers = _reuseport_servers(2)
        try:
            port = servers[0][1]
            ports = [run_client("connect", port)["port"] for _ in range(16)]
        finally:
            for server, _ in servers:
                server.terminate()
        accepted_by = {
            int(line.split()[1]): server.pid
            for server, _ in servers
            for line in server.communicate(timeout=30)[0].splitlines()
            if line.startswith("accepted")
        }
        events = hostcore.stop()
    contexts = by_client(events, port)
    assert len(set(accepted_by.values())) == 2, "one listener took every connection"
    for client_port in ports:
        assert contexts[("incoming", client_port)]["pid"] == accepted_by[client_port]


def _reuseport_servers(count: int) -> list[tuple[subprocess.Popen[str], int]]:
    servers: list[tuple[subprocess.Popen[str], int]] = []
    port = 0
    for _ in range(count):
        server = subprocess.Popen(
            [sys.executable, str(TOOLS / "reuseport_server.py"), str(port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert server.stdout is not None
        port = int(server.stdout.readline().split()[1])
        servers.append((server, port))
    return servers


def test_a_non_root_user_is_reported_by_uid(tmp_path: Path) -> None:
    with Hostcore(tmp_path) as hostcore, http_server_process("127.0.0.1") as (port, _):
        client_port = curl(f"http://127.0.0.1:{port}/", uid=NOBODY)[1]
        events = hostcore.stop()
    outgoing = by_client(events, port)[("outgoing", client_port)]
    assert (outgoing["uid"], outgoing["comm"]) == (NOBODY, "curl")


def test_container_id_from_the_cgroup_and_the_container_scope(
    tmp_path: Path, container_cgroup: Path
) -> None:
    with (
        Hostcore(tmp_path, ["--scope", "container"]) as hostcore,
        http_server_process("127.0.0.1") as (port, _),
        no_syncookies(),
    ):
        inside = curl(f"http://127.0.0.1:{port}/", cgroup=container_cgroup)[1]
        curl(f"http://127.0.0.1:{port}/")  # outside: filtered out
        events = hostcore.stop()
    contexts = by_client(events, port)
    assert list(contexts) == [("outgoing", inside)]
    context = contexts[("outgoing", inside)]
    assert context["container_id"] == CONTAINER_ID
    assert context["cgroup_id"] == os.stat(container_cgroup).st_ino
