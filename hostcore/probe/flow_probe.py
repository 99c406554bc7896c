"""The base probe ``net_packet_flow_base``: bcc compile, BPF-link attach, ring-buffer reads."""

from __future__ import annotations

import errno
import os
import time
from collections.abc import Sequence
from importlib.resources import files
from pathlib import Path
from typing import Any

from hostcore.packet import PacketKind
from hostcore.probe.link import AttachType, link_cgroup
from hostcore.probe.records import HEADER, TOTALS_FOLLOW
from hostcore.probe.ring import RingError, RingReader

NAME = "net_packet_flow_base"
SOURCE = Path(str(files("_hostcore_bpf") / "net_packet_flow_base.c"))  # see bpf/__init__.py
PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
FINAL_READ_RETRIES = 100  # 1 ms apart

_DEFINES = {
    PacketKind.TCP_SYN_ACK: "WANT_TCP_SYN_ACK",
    PacketKind.TCP_FIN_RST: "WANT_TCP_FIN_RST",
    PacketKind.TCP_SYN: "WANT_TCP_SYN",
    PacketKind.DNS_ANSWER: "WANT_DNS_ANSWER",
}
# Ends held in the kernel until their socket closes (struct held_end, 200 bytes each);
# beyond that a FIN or RST is passed up at once, without totals.
HELD_ENDS = 16384
# name: (program type, attach type); bcc's program type numbers, the kernel's attach types
_PROGRAMS = {
    b"hc_flow_ingress": ("CGROUP_SKB", AttachType.CGROUP_INET_INGRESS),
    b"hc_flow_egress": ("CGROUP_SKB", AttachType.CGROUP_INET_EGRESS),
    b"hc_sock_create": ("CGROUP_SOCK", AttachType.CGROUP_INET_SOCK_CREATE),
    b"hc_connect4": ("CGROUP_SOCK_ADDR", AttachType.CGROUP_INET4_CONNECT),
    b"hc_connect6": ("CGROUP_SOCK_ADDR", AttachType.CGROUP_INET6_CONNECT),
    b"hc_post_bind4": ("CGROUP_SOCK", AttachType.CGROUP_INET4_POST_BIND),
    b"hc_post_bind6": ("CGROUP_SOCK", AttachType.CGROUP_INET6_POST_BIND),
}
_TOTALS_PROGRAM = {b"hc_sock_ops": ("SOCK_OPS", AttachType.CGROUP_SOCK_OPS)}


def _not_closed_in(held: list[bytes], records: list[bytes]) -> list[bytes]:
    """The held ends whose socket's closed record (with totals) is not among ``records``."""
    headers = (HEADER.unpack_from(record) for record in records if len(record) >= HEADER.size)
    closed = {header[2] for header in headers if header[6] & TOTALS_FOLLOW}
    return [record for record in held if HEADER.unpack_from(record)[2] not in closed]


class ProbeError(RuntimeError):
    """The probe could not be loaded or attached; the message says what to check."""


def cflags(needs: PacketKind, ring_buffer_kib: int, scope: Sequence[str] = ()) -> list[str]:
    """The compile flags that select the packet kinds ``needs`` asks for, then ``scope``'s."""
    wanted = [f"-D{define}" for kind, define in _DEFINES.items() if kind in needs]
    if _holds_ends(needs):
        wanted += ["-DWANT_TCP_TOTALS", f"-DHELD_ENDS={HELD_ENDS}"]
    return [*wanted, f"-DRING_PAGES={max(1, ring_buffer_kib // PAGE_KIB)}", *scope]


def _holds_ends(needs: PacketKind) -> bool:
    return PacketKind.TCP_TOTALS | PacketKind.TCP_FIN_RST in needs


class FlowProbe:
    """cgroup_skb ingress+egress programs passing selected packets up one ring buffer."""

    def __init__(
        self, needs: PacketKind, cgroup: Path, ring_buffer_kib: int, scope: Sequence[str] = ()
    ) -> None:
        self.needs = needs
        self.cgroup = cgroup
        self.cflags = cflags(needs, ring_buffer_kib, scope)
        self._programs = {**_PROGRAMS, **(_TOTALS_PROGRAM if _holds_ends(needs) else {})}
        self._bpf: Any = None
        self._links: list[int] = []
        self._ring: RingReader | None = None

    def attach(self) -> None:
        """Compile, load and link both programs; records flow from here on."""
        try:
            from bcc import BPF  # imported late: the rest of hostcore runs without bcc
        except ImportError as error:
            raise ProbeError(
                "cannot import bcc: install python3-bpfcc and run hostcore from a venv "
                "created with --system-site-packages (see 'hostcore doctor')"
            ) from error
        try:
            self._bpf = BPF(src_file=str(SOURCE).encode(), cflags=self.cflags)
            programs = {
                name: self._bpf.load_func(name, getattr(BPF, kind), attach_type=int(attach_type))
                for name, (kind, attach_type) in self._programs.items()
            }
            records = self._bpf[b"records"]
            self._ring = RingReader(records.map_fd, records.max_entries)
        except RingError as error:
            raise ProbeError(str(error)) from error
        except Exception as error:
            raise ProbeError(
                f"cannot compile or load {SOURCE.name}: {error} "
                "(check kernel headers and privileges with 'hostcore doctor')"
            ) from error
        try:
            cgroup_fd = os.open(self.cgroup, os.O_RDONLY | os.O_DIRECTORY)
        except OSError as error:
            raise ProbeError(f"cannot open cgroup {self.cgroup}: {error.strerror}") from error
        try:
            for name, (_, attach_type) in self._programs.items():
                self._links.append(link_cgroup(programs[name].fd, cgroup_fd, attach_type))
        except OSError as error:
            self.detach()
            hint = (
                f" (another program may hold this hook alone: 'bpftool cgroup show {self.cgroup}')"
                if error.errno == errno.EPERM and os.geteuid() == 0
                else ""
            )
            raise ProbeError(f"cannot attach to cgroup {self.cgroup}: {error}{hint}") from error
        finally:
            os.close(cgroup_fd)

    def read(self, timeout_ms: int) -> list[bytes]:
        """Wait ``timeout_ms``, then take every record the ring buffer holds."""
        # Records are submitted without wakeups (one per record costs ~5 us), so
        # there is nothing to wait on: sleep, then drain whatever arrived meanwhile.
        assert self._ring is not None
        if timeout_ms:
            time.sleep(timeout_ms / 1000)
            return self._ring.read()
        # The last read: ends still held (see _held_ends), then whatever the ring
        # holds, giving a record still being written a moment to be submitted.
        held = self._held_ends()
        records = self._ring.read()
        for _ in range(FINAL_READ_RETRIES):
            if not self._ring.blocked:
                break
            time.sleep(0.001)
            records += self._ring.read()
        return records + _not_closed_in(held, records)

    def _held_ends(self) -> list[bytes]:
        """The FINs and RSTs held for sockets not closed yet, as records without totals.

        Read before the ring: the kernel reserves a closed socket's record before it
        deletes the held end, so an end missing here is in the ring by then.
        """
        if not _holds_ends(self.needs):
            return []
        return [bytes(value) for value in self._bpf[b"held_ends"].values()]  # struct held_end

    def reserve_failures(self) -> int:
        """Records the kernel dropped because the ring buffer was full, over all CPUs."""
        return int(self._bpf[b"reserve_failures"].sum(0).value)

    def detach(self) -> None:
        """Close the links: the kernel detaches the programs; records already queued stay."""
        for fd in self._links:
            os.close(fd)
        self._links.clear()

    def close(self) -> None:
        self.detach()
        if self._ring is not None:
            self._ring.close()
            self._ring = None
        if self._bpf is not None:
            self._bpf.cleanup()
            self._bpf = None
