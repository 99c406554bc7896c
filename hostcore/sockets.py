"""Owners of TCP listeners older than the probe: cookies from sock_diag, processes from /proc.

The probe records the owner of every socket created or connected after it was
attached. A listener created before then has no record, so at start-up its
cookie (which the probe's records carry) is matched to the processes holding it.
"""

from __future__ import annotations

import contextlib
import os
import socket
import struct
from pathlib import Path

from hostcore.packet import Owner, OwnerSource

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_LISTEN = 10

_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
_COOKIE = struct.Struct("=II")  # inet_diag_sockid.idiag_cookie, at offset 44 of the message
_INODE = struct.Struct("=I")  # inet_diag_msg.idiag_inode, at offset 68


def _listeners(family: int) -> dict[int, int]:
    """Listening TCP sockets of this network namespace: inode -> socket cookie."""
    found: dict[int, int] = {}
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as diag:
        request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN)
        header = _NLMSG.pack(_NLMSG.size + len(request), SOCK_DIAG_BY_FAMILY,
                             NLM_F_REQUEST | NLM_F_DUMP, 1, 0)  # fmt: skip
        diag.send(header + request)
        while True:
            data = diag.recv(65536)
            offset = 0
            while offset + _NLMSG.size <= len(data):
                length, kind, _, _, _ = _NLMSG.unpack_from(data, offset)
                if kind == NLMSG_DONE:
                    return found
                if kind == NLMSG_ERROR or length < _NLMSG.size:
                    raise OSError("sock_diag refused the listener dump")
                body = offset + _NLMSG.size
                low, high = _COOKIE.unpack_from(data, body + 44)
                (inode,) = _INODE.unpack_from(data, body + 68)
                found[inode] = high << 32 | low
                offset += (length + 3) & ~3


def _holders(inodes: set[int], proc: Path) -> dict[int, list[int]]:
    """Processes holding each socket inode, from /proc/*/fd."""
    holders: dict[int, list[int]] = {}
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fds = list(os.scandir(entry / "fd"))
        except OSError:  # gone, or not ours to read
            continue
        for fd in fds:
            with contextlib.suppress(OSError):  # closed meanwhile
                target = os.readlink(fd.path)
                if target.startswith("socket:[") and int(target[8:-1]) in inodes:
                    holders.setdefault(int(target[8:-1]), []).append(int(entry.name))
    return holders


def parent_pid(pid: int, proc: Path = Path("/proc")) -> int:
    """The parent of ``pid``, from /proc/PID/stat (after the command name, which may hold ')')."""
    stat = (proc / str(pid) / "stat").read_text()
    return int(stat.rsplit(")", 1)[1].split()[1])


def _real_uid(pid: int, proc: Path) -> int:
    for line in (proc / str(pid) / "status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise ValueError(f"no Uid line for {pid}")


def listener_owners(proc: Path = Path("/proc")) -> dict[int, Owner]:
    """Socket cookie -> owner, for this network namespace's TCP listeners.

    Processes that share a listener (a server and the workers it forked) are
    reduced to the one whose parent does not hold it: the one that opened it.
    A listener held by unrelated processes is left out rather than guessed.
    """
    listeners = {**_listeners(socket.AF_INET), **_listeners(socket.AF_INET6)}
    return owners_of(listeners, proc)


def owners_of(listeners: dict[int, int], proc: Path) -> dict[int, Owner]:
    """Socket cookie -> owner, for listeners given as inode -> cookie."""
    owners = {}
    for inode, pids in _holders(set(listeners), proc).items():
        with contextlib.suppress(OSError, ValueError, IndexError):  # a process exited
            held = set(pids)
            roots = [pid for pid in pids if parent_pid(pid, proc) not in held]
            if len(roots) != 1:
                continue
            comm = (proc / str(roots[0]) / "comm").read_text().strip()
            owner = Owner(roots[0], None, _real_uid(roots[0], proc), comm, OwnerSource.FOUND)
            owners[listeners[inode]] = owner
    return owners
