"""Facts about a process that /proc tells once: its parent, namespaces, start times, nodename.

Tracee's event context carries them (types/trace/trace.go ``Event``). hostcore
reads them when an event first names a process and keeps them, bounded, so
that no event costs a read of /proc: a process that exited before its first
event has none (None), and that answer is kept too.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

from hostcore.probe import netns
from hostcore.probe.clock import boot_to_epoch_offset_ns

PROC = Path("/proc")
CLONE_NEWUTS = 0x04000000
CACHE_LIMIT = 16384
_NS_PER_TICK = 10**9 // os.sysconf("SC_CLK_TCK")
_START_TIME = 19  # starttime, field 22 of /proc/PID/stat, counted after the ")" of comm


class ProcessFacts(NamedTuple):
    """One thread of a process as /proc described it when hostcore first saw it."""

    ppid: int  # the host pid of the parent process (0 for none: pid 1, kthreadd)
    ns_pid: int  # the process's pid in its own pid namespace
    ns_tid: int | None  # the thread's, when the thread is known
    ns_ppid: int | None  # the parent's pid there; 0 when the parent is outside it
    start_time: int | None  # the thread's start, ns since the epoch (10 ms resolution)
    process_start_time: int  # the process's (its first thread's) start
    parent_start_time: int | None
    pid_ns: int | None  # pid namespace inode
    mnt_ns: int | None  # mount namespace inode
    nodename: str | None  # the UTS namespace's host name


class _Task(NamedTuple):
    ppid: int
    ns_ids: list[int]  # NSpid: the task's id in each pid namespace, the host's first
    start_ticks: int  # clock ticks since boot
    pid_ns: int | None


def _namespace(task: Path, kind: str) -> int | None:
    try:
        return os.stat(task / "ns" / kind).st_ino
    except OSError:  # an exited task keeps its /proc entry (a zombie) but has no namespaces
        return None


def _task(path: Path) -> _Task:
    status = dict(
        line.split(":\t", 1) for line in (path / "status").read_text().splitlines() if ":\t" in line
    )
    # comm may hold spaces and ")": the fields that follow it start after the last ")".
    stat = (path / "stat").read_text().rsplit(")", 1)[1].split()
    ns_ids = [int(n) for n in status["NSpid"].split()]
    return _Task(int(status["PPid"]), ns_ids, int(stat[_START_TIME]), _namespace(path, "pid"))


class ProcessReader:
    """Reads ``ProcessFacts`` once per distinct thread (pid, tid, name), at most ``limit`` kept."""

    def __init__(self, limit: int = CACHE_LIMIT) -> None:
        self._limit = limit
        self._cache: dict[tuple[int, int | None, str], ProcessFacts | None] = {}
        self._own_uts = _namespace(Path("/proc/thread-self"), "uts")

    def facts(self, pid: int, tid: int | None, comm: str) -> ProcessFacts | None:
        """The facts of thread ``tid`` (None: not known) of process ``pid``; None if gone.

        The name is part of the key, so that a pid reused by another program is read anew.
        """
        key = (pid, tid, comm)
        if key in self._cache:
            return self._cache[key]
        if len(self._cache) >= self._limit:
            self._cache.clear()
        facts = self._cache[key] = self._read(pid, tid)
        return facts

    def _read(self, pid: int, tid: int | None) -> ProcessFacts | None:
        path = PROC / str(pid)
        try:
            process = _task(path)
            thread = process if tid in (None, pid) else _task(path / "task" / str(tid))
        except (OSError, KeyError, ValueError, IndexError):  # gone, or not ours to read
            return None
        parent: _Task | None = None
        if process.ppid:
            try:
                parent = _task(PROC / str(process.ppid))
            except (OSError, KeyError, ValueError, IndexError):
                parent = None
        offset_ns = boot_to_epoch_offset_ns()
        return ProcessFacts(
            ppid=process.ppid,
            ns_pid=process.ns_ids[-1],
            ns_tid=thread.ns_ids[-1] if tid is not None else None,
            ns_ppid=_ns_ppid(process, parent),
            start_time=offset_ns + thread.start_ticks * _NS_PER_TICK if tid is not None else None,
            process_start_time=offset_ns + process.start_ticks * _NS_PER_TICK,
            parent_start_time=offset_ns + parent.start_ticks * _NS_PER_TICK if parent else None,
            pid_ns=process.pid_ns,
            mnt_ns=_namespace(path, "mnt"),
            nodename=self._nodename(path),
        )

    def _nodename(self, path: Path) -> str | None:
        uts = _namespace(path, "uts")
        if uts is None:
            return None
        if uts == self._own_uts:
            return os.uname().nodename
        try:  # only a thread of ours that enters the namespace can ask it
            return netns.run_in(path / "ns" / "uts", lambda: os.uname().nodename, CLONE_NEWUTS)
        except OSError:
            return None


def _ns_ppid(process: _Task, parent: _Task | None) -> int | None:
    """The parent's pid in the process's pid namespace, as Tracee gives it: 0 when the
    parent is in another namespace (the first process of a new one) or there is none."""
    if not process.ppid:
        return 0
    if len(process.ns_ids) == 1:  # in the first pid namespace, as every ancestor is
        return process.ppid
    if parent is None or parent.pid_ns is None or process.pid_ns is None:
        return None  # pid 1's namespaces, say, are not always ours to read
    return parent.ns_ids[-1] if parent.pid_ns == process.pid_ns else 0
