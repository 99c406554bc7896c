"""TCP sockets older than the probe: sock_diag dumps, owners from /proc.

The probe records the owner of every socket created or connected after it was
attached. A listener or connection from before then has no record, so at
start-up its cookie (which the probe's records carry) is matched to the
processes holding it. Established connections, of every network namespace,
are read for the flow events too.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import struct
from pathlib import Path
from typing import NamedTuple

import structlog

from hostcore.packet import OpenSocket, Owner, OwnerSource
from hostcore.probe import netns

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x1
NLM_F_DUMP = 0x300
NLMSG_ERROR = 2
NLMSG_DONE = 3
TCP_ESTABLISHED = 1
TCP_LISTEN = 10
WILDCARDS = frozenset({"0.0.0.0", "::"})

log = structlog.get_logger()

_NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
_REQUEST = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states, id
# inet_diag_msg: family, state, timer, retrans, then inet_diag_sockid: ports (big-endian),
# addresses (16 bytes each, IPv4 in the first 4), interface, cookie; inode at offset 68.
_MESSAGE = struct.Struct("=BBxx2H16s16s4xIIxxxxxxxxxxxxxxxxI")


class DiagSocket(NamedTuple):
    """One TCP socket as sock_diag reports it."""

    state: int
    local: str
    local_port: int
    remote: str
    remote_port: int
    cookie: int
    inode: int


def _address(family: int, packed: bytes) -> str:
    """As the probe reports it: an IPv4-mapped IPv6 address becomes IPv4."""
    if family == socket.AF_INET:
        return socket.inet_ntop(family, packed[:4])
    address = ipaddress.IPv6Address(packed)
    return str(address.ipv4_mapped or socket.inet_ntop(family, packed))


def _parse(data: bytes, offset: int) -> DiagSocket:
    family, state, sport, dport, src, dst, low, high, inode = _MESSAGE.unpack_from(data, offset)
    return DiagSocket(
        state,
        _address(family, src),
        socket.ntohs(sport),
        _address(family, dst),
        socket.ntohs(dport),
        high << 32 | low,
        inode,
    )


def tcp_sockets(family: int, states: int) -> list[DiagSocket]:
    """TCP sockets of this network namespace in ``states`` (a mask of 1 << state)."""
    found: list[DiagSocket] = []
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG) as diag:
        request = _REQUEST.pack(family, socket.IPPROTO_TCP, 0, 0, states)
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
                    raise OSError("sock_diag refused the socket dump")
                found.append(_parse(data, offset + _NLMSG.size))
                offset += (length + 3) & ~3


def _both_families(states: int) -> list[DiagSocket]:
    return tcp_sockets(socket.AF_INET, states) + tcp_sockets(socket.AF_INET6, states)


def open_sockets() -> list[tuple[OpenSocket, int]]:
    """The host's established TCP sockets, each with its inode, from every network
    namespace (a namespace that cannot be read is skipped, with a warning)."""
    here = netns.own()
    found = _established()
    for inode, path in netns.namespaces().items():
        if inode != here:
            try:
                found += netns.run_in(path, _established)
            except OSError as error:
                log.warning("network namespace not read", namespace=str(path), error=str(error))
    return found


def _established() -> list[tuple[OpenSocket, int]]:
    """This thread's network namespace's established TCP sockets, each with its inode.

    A socket whose local port a listener holds (on its address or a wildcard)
    is ``incoming``; the others connected out.
    """
    dumped = _both_families(1 << TCP_ESTABLISHED | 1 << TCP_LISTEN)
    listening = {(s.local, s.local_port) for s in dumped if s.state == TCP_LISTEN}
    wildcards = {port for address, port in listening if address in WILDCARDS}
    return [
        (
            OpenSocket(
                s.local,
                s.local_port,
                s.remote,
                s.remote_port,
                s.local_port in wildcards or (s.local, s.local_port) in listening,
                s.cookie,
            ),
            s.inode,
        )
        for s in dumped
        if s.state == TCP_ESTABLISHED
    ]


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
    listeners = {s.inode: s.cookie for s in _both_families(1 << TCP_LISTEN)}
    return owners_of(listeners, proc)


def owners_of(listeners: dict[int, int], proc: Path = Path("/proc")) -> dict[int, Owner]:
    """Socket cookie -> owner, for sockets given as inode -> cookie."""
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
