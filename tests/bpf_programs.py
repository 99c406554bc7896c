"""The kernel side of live tests: which BPF programs are attached under a cgroup (bpftool),
and which a process holds."""

from __future__ import annotations

import contextlib
import json
import subprocess
from collections import Counter
from pathlib import Path


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
        "hc_sock_ops",  # with net_flow_tcp_end, as in the runs that compare with this set
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
