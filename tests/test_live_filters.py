"""Scope and data filters on a real run: each form keeps exactly the events it names."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import CONTAINER_ID
from runs import Hostcore
from traffic import curl, http_server_process, no_syncookies

pytestmark = [pytest.mark.live, pytest.mark.usefixtures("root")]

NOBODY = 65534


@dataclass
class Setup:
    port: int
    server_pid: int
    container: Path


def _traffic(port: int, container: Path) -> dict[str, int]:
    """Three curls: from the container's cgroup, from the root cgroup, as nobody."""
    url = f"http://127.0.0.1:{port}/"
    return {
        "container": curl(url, cgroup=container)[1],
        "plain": curl(url)[1],
        "nobody": curl(url, uid=NOBODY)[1],
    }


OUT, IN = "outgoing", "incoming"
ALL = {(d, c) for d in (OUT, IN) for c in ("container", "plain", "nobody")}
OUTS = {(OUT, c) for c in ("container", "plain", "nobody")}
INS = ALL - OUTS

Args = Callable[[Setup], list[str]]


@pytest.mark.parametrize(
    ("args", "kept"),
    [
        (lambda s: ["--scope", "comm=curl"], OUTS),
        (lambda s: ["--scope", "comm=pyth*"], INS),  # the server
        (lambda s: ["--scope", "comm!=curl"], INS),
        (lambda s: ["--scope", f"uid={NOBODY}"], {(OUT, "nobody")}),
        (lambda s: ["--scope", f"uid!={NOBODY}"], ALL - {(OUT, "nobody")}),
        (lambda s: ["--scope", f"pid={s.server_pid}"], INS),
        (lambda s: ["--scope", f"cgroup=/{s.container.name}"], {(OUT, "container")}),
        (lambda s: ["--scope", f"cgroup={os.stat(s.container).st_ino}"], {(OUT, "container")}),
        (lambda s: ["--scope", "!container"], ALL - {(OUT, "container")}),
        (lambda s: ["--scope", f"container={CONTAINER_ID[:12]}"], {(OUT, "container")}),
        (lambda s: ["--scope", "comm=curl", "--scope", f"uid!={NOBODY}"], OUTS - {(OUT, "nobody")}),
        (lambda s: ["--events", "net_flow_tcp_begin.data.conn_direction=outgoing"], OUTS),
        (lambda s: ["--events", f"net_flow_tcp_begin.data.dst_port={s.port},1"], ALL),
        (lambda s: ["--events", f"net_flow_tcp_begin.data.dst_port!={s.port}"], set()),
        (lambda s: ["--events", "net_flow_tcp_begin.data.dst=127.0.0.*"], ALL),
        (lambda s: ["--events", "net_flow_tcp_begin.data.dst=*.2"], set()),
    ],
    ids=[
        "comm",
        "comm-prefix",
        "comm-not",
        "uid",
        "uid-not",
        "pid",
        "cgroup-path",
        "cgroup-id",
        "not-container",
        "container-id",
        "scope-and",
        "data-direction",
        "data-port",
        "data-port-not",
        "data-prefix",
        "data-suffix",
    ],
)
def test_filter_keeps_exactly_what_it_names(
    tmp_path: Path, container_cgroup: Path, args: Args, kept: set[tuple[str, str]]
) -> None:
    # The server starts first, so its listener is one found through /proc.
    with http_server_process("127.0.0.1") as (port, server_pid):
        setup = Setup(port, server_pid, container_cgroup)
        with no_syncookies(), Hostcore(tmp_path, args(setup)) as hostcore:
            clients = _traffic(port, container_cgroup)
            events = hostcore.stop()
    names = {port: name for name, port in clients.items()}
    seen = [
        (e["data"]["conn_direction"], names[e["data"]["src_port"]])
        for e in events
        if e["name"] == "net_flow_tcp_begin" and e["data"]["dst_port"] == port
    ]
    assert sorted(seen) == sorted(kept)
    if "--events" in args(setup):  # data filters drop in user space, where they are counted
        filtered = hostcore.log("totals").get("events_filtered.net_flow_tcp_begin", 0)
        assert filtered >= len(ALL) - len(kept)


def test_uid_scope_is_applied_in_the_kernel(tmp_path: Path, container_cgroup: Path) -> None:
    """Attached to one cgroup that holds only the test's two curls: the kernel passes up one."""
    args = ["--cgroup", str(container_cgroup), "--scope", f"uid={NOBODY}"]
    with http_server_process("127.0.0.1") as (port, _), Hostcore(tmp_path, args) as hostcore:
        url = f"http://127.0.0.1:{port}/"
        curl(url, cgroup=container_cgroup)
        nobody = curl(url, cgroup=container_cgroup, uid=NOBODY)[1]
        events = hostcore.stop()
    assert [(e["name"], e["data"]["src_port"], e["context"]["uid"]) for e in events] == [
        ("net_flow_tcp_begin", nobody, NOBODY),
        ("net_flow_tcp_end", nobody, NOBODY),
    ]
    totals = hostcore.log("totals")
    assert totals["records"] == 2  # root's SYN+ACK and FIN never left the kernel...
    assert "events_filtered.net_flow_tcp_begin" not in totals  # ...so nothing was filtered here
