"""Owners of older listeners: which process holding a socket is named."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hostcore.packet import Owner, OwnerSource
from hostcore.probe import netns
from hostcore.probe.sockets import owners_of


def _process(proc: Path, pid: int, parent: int, comm: str, uid: int, sockets: list[int]) -> None:
    entry = proc / str(pid)
    (entry / "fd").mkdir(parents=True)
    (entry / "stat").write_text(f"{pid} ({comm} (x)) S {parent} 1 1 0\n")
    (entry / "comm").write_text(comm + "\n")
    (entry / "status").write_text(f"Name:\t{comm}\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n")
    for fd, inode in enumerate(sockets):
        os.symlink(f"socket:[{inode}]", entry / "fd" / str(fd))


def test_the_holder_whose_parent_does_not_hold_it_is_named(tmp_path: Path) -> None:
    _process(tmp_path, 100, 1, "nginx", 0, [501])  # master
    _process(tmp_path, 101, 100, "nginx", 33, [501])  # worker, another user
    _process(tmp_path, 200, 1, "a", 0, [502])  # two unrelated holders: left out
    _process(tmp_path, 300, 1, "b", 0, [502])
    _process(tmp_path, 400, 1, "other", 0, [999])  # not a listener
    owners = owners_of({501: 7001, 502: 7002}, tmp_path)
    assert owners == {7001: Owner(100, None, 0, "nginx", OwnerSource.FOUND)}


def test_work_runs_in_the_namespace_and_errors_reach_the_caller(tmp_path: Path) -> None:
    own = Path(f"/proc/{os.getpid()}/ns/net")
    assert netns.run_in(own, lambda: os.stat("/proc/thread-self/ns/net").st_ino) == netns.own()
    assert netns.own() in netns.namespaces()
    with pytest.raises(FileNotFoundError):
        netns.run_in(tmp_path / "gone", lambda: None)
