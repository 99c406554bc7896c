"""Network namespaces of the host, and running a function inside one of them."""

from __future__ import annotations

import contextlib
import ctypes
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

CLONE_NEWNET = 0x40000000
NAMED = Path("/run/netns")  # where `ip netns add` keeps namespaces no process may hold

Result = TypeVar("Result")


def namespaces(proc: Path = Path("/proc")) -> dict[int, Path]:
    """One path per network namespace of the host, by namespace inode: a process's
    /proc/PID/ns/net, or a name `ip netns` keeps."""
    found: dict[int, Path] = {}
    candidates = [entry / "ns" / "net" for entry in proc.iterdir() if entry.name.isdigit()]
    if NAMED.is_dir():
        candidates += list(NAMED.iterdir())
    for path in candidates:
        with contextlib.suppress(OSError):  # a process that exited, a stale name
            found.setdefault(os.stat(path).st_ino, path)
    return found


def own() -> int:
    """The inode of this process's network namespace."""
    return os.stat("/proc/thread-self/ns/net").st_ino


def run_in(namespace: Path, work: Callable[[], Result], kind: int = CLONE_NEWNET) -> Result:
    """``work()`` on a thread moved into ``namespace`` (a network one, or another ``kind``):
    sockets it opens live there.

    Only that thread moves (setns works per thread for network and UTS namespaces),
    and it ends with ``work``, so the rest of the process never changes namespace.
    """
    results: list[Result] = []
    errors: list[BaseException] = []

    def enter_and_work() -> None:
        try:
            fd = os.open(namespace, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, kind) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {namespace}")
            finally:
                os.close(fd)
            results.append(work())
        except BaseException as error:  # handed to the caller's thread
            errors.append(error)

    thread = threading.Thread(target=enter_and_work, name="netns")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]
