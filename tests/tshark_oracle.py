"""What tshark says a capture's begin events and their DNS names must be (the replay oracle).

tshark dissects each file independently of hostcore. From its output this
module derives, per connection identity (4-tuple and client ISN, absolute
sequence numbers), the first SYN+ACK in file order: its timestamp, the
direction where the capture records it, and the names that DNS answers seen
earlier (src port 53, answer section, TTL still running in capture time) give
the server address.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from hostcore.config import DnsConfig

# The public captures in the repository (MANIFEST.md there: provenance and licences);
# HOSTCORE_PCAPS points the tests at another corpus of the same shape.
CORPUS = Path(
    os.environ.get("HOSTCORE_PCAPS", Path(__file__).resolve().parent / "data" / "captures")
)
# Small captures of each container and several link types: seeds for the fuzzers.
SMALL_CAPTURES = (
    "pcpp_many_interfaces-1.pcapng",  # pcapng, Ethernet and BSD loopback; DNS answers
    "pcpp_nanosecs_big_endian.pcap",
    "zeek_nflog-http.pcap",
    "lwerdna_simple_http_sll2.pcap",
    "arkime_80211http.pcap",
    "zeek_vlan-qinqinq.pcap",
)
TTL_CEILING_S = DnsConfig().ttl_ceiling_s  # the default replay runs with
_FIELDS = (
    "frame.number",
    "frame.time_epoch",
    "frame.protocols",
    "ip.src",
    "ipv6.src",
    "ip.dst",
    "ipv6.dst",
    "tcp.srcport",
    "tcp.dstport",
    "tcp.flags",
    "tcp.ack",
    "udp.srcport",
    "sll.pkttype",
    "frame.packet_flags_direction",
    "dns.flags.response",
    "dns.count.answers",
    "dns.qry.name",
    "dns.resp.name",
    "dns.resp.type",
    "dns.resp.ttl",
    "dns.a",
    "dns.aaaa",
    "dns.cname",
)
_FILTER = (
    "(tcp.flags.syn==1 && tcp.flags.ack==1 && tcp.flags.reset==0)"
    " || (dns.flags.response==1 && (udp.srcport==53 || tcp.srcport==53))"
)
# For a SYN+ACK: arriving (Linux cooked: to us, broadcast, multicast; pcapng: inbound)
# means this host connected out.
_SLL_DIRECTION = {"0": "outgoing", "1": "outgoing", "2": "outgoing", "4": "incoming"}
_FLAGS_DIRECTION = {"1": "outgoing", "2": "incoming"}
_TYPES = {"1": "dns.a", "28": "dns.aaaa", "5": "dns.cname"}

Flow = tuple[str, int, str, int, int]  # src, src_port, dst, dst_port, timestamp_ns


@dataclass
class Begin:
    flow: Flow
    frame: int
    direction: str | None  # None: the capture does not record it
    dst_dns: set[str] = field(default_factory=set)


def _tshark(path: Path) -> list[dict[str, list[str]]]:
    command = ["tshark", "-n", "-r", str(path), "-o", "tcp.relative_sequence_numbers:FALSE"]
    command += ["-Y", _FILTER, "-T", "fields", "-E", "occurrence=a", "-E", "aggregator=|"]
    for name in _FIELDS:
        command += ["-e", name]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode and "cut short" not in done.stderr:  # a cut file: what came before counts
        raise RuntimeError(f"tshark failed on {path}: {done.stderr}")
    out = done.stdout
    return [
        {
            name: value.split("|") if value else []
            for name, value in zip(_FIELDS, line.split("\t"), strict=True)
        }
        for line in out.splitlines()
    ]


def _time_ns(row: dict[str, list[str]]) -> int:
    return int(Decimal(row["frame.time_epoch"][0]) * 10**9)


def _innermost_ip(row: dict[str, list[str]]) -> str:
    layers = [name for name in row["frame.protocols"][0].split(":") if name in ("ip", "ipv6")]
    return layers[-1]


def _answers(row: dict[str, list[str]]) -> dict[tuple[str, tuple[str, ...]], int]:
    """The answer section's address records: (address, the chain naming it) -> expiry."""
    if len(row["dns.count.answers"]) != 1 or len(row["dns.qry.name"]) != 1:
        return {}  # several messages in one frame: not in this corpus
    count = int(row["dns.count.answers"][0])
    used = defaultdict(int)
    cnames: dict[str, str] = {}
    addresses: list[tuple[str, str, int]] = []
    records = zip(row["dns.resp.name"], row["dns.resp.type"], row["dns.resp.ttl"], strict=False)
    for name, kind, ttl in itertools.islice(records, count):  # the answer section comes first
        values = _TYPES.get(kind)
        if values is None:
            continue
        value = row[values][used[values]]
        used[values] += 1
        if kind == "5":
            cnames[name.lower()] = value.lower()
        else:
            addresses.append((name.lower(), value, int(ttl)))
    question = row["dns.qry.name"][0].lower()
    chain = [question]
    while chain[-1] in cnames and len(chain) < 16:
        chain.append(cnames[chain[-1]])
    time_ns = _time_ns(row)
    return {
        (address, tuple(chain[: chain.index(owner) + 1])): time_ns + min(ttl, TTL_CEILING_S) * 10**9
        for owner, address, ttl in addresses
        if owner in chain
    }


def begins(path: Path) -> list[Begin]:
    """One Begin per connection identity, at its first SYN+ACK in the file."""
    seen: set[tuple[object, ...]] = set()
    found: list[Begin] = []
    # By address and chain: a later answer for the same name replaces the earlier one
    # (a TTL of 0 ends the name at once), as a resolver's cache would.
    answers: dict[tuple[str, tuple[str, ...]], int] = {}
    for row in _tshark(path):
        protocols = row["frame.protocols"][0].split(":")
        if "icmp" in protocols or "icmpv6" in protocols:
            continue  # a header quoted inside an ICMP error
        flags = int(row["tcp.flags"][-1], 16) if row["tcp.flags"] else 0
        if flags & 0x12 != 0x12:
            answers.update(_answers(row))
            continue
        version = _innermost_ip(row)
        src, dst = row[f"{version}.src"][-1], row[f"{version}.dst"][-1]
        src_port, dst_port = int(row["tcp.srcport"][-1]), int(row["tcp.dstport"][-1])
        direction = None
        if row["frame.packet_flags_direction"]:
            direction = _FLAGS_DIRECTION.get(row["frame.packet_flags_direction"][0])
        elif row["sll.pkttype"]:
            direction = _SLL_DIRECTION.get(row["sll.pkttype"][0])
        identity = (direction, src, src_port, dst, dst_port, int(row["tcp.ack"][-1]))
        if identity in seen:
            continue
        seen.add(identity)
        time_ns = _time_ns(row)
        frame = int(row["frame.number"][0])
        names = {
            name
            for (address, chain), expires_ns in answers.items()
            if address == src and expires_ns > time_ns  # as the store: expired at its TTL
            for name in chain
        }
        # the client is the SYN+ACK's destination
        found.append(Begin((dst, dst_port, src, src_port, time_ns), frame, direction, names))
    return found


def assert_matches(path: Path, events: list[dict[str, Any]], skip_frames: set[int]) -> None:
    """``events`` (begin events from replaying ``path``) are what tshark says they must be.

    Compared as multisets: endpoints and timestamp, the direction where the
    capture records it, and the set of dst_dns names.
    """
    expected = [begin for begin in begins(path) if begin.frame not in skip_frames]
    recorded = {begin.flow for begin in expected if begin.direction is not None}
    found = Counter()
    for event in events:
        if event["name"] != "net_flow_tcp_begin":
            continue
        data = event["data"]
        flow = (data["src"], data["src_port"], data["dst"], data["dst_port"], event["timestamp"])
        direction = data["conn_direction"] if flow in recorded else None
        found[flow, direction, frozenset(data["dst_dns"])] += 1
    assert found == Counter(
        (begin.flow, begin.direction, frozenset(begin.dst_dns)) for begin in expected
    )
