"""The user-space pipeline alone, on one core: ring-buffer records -> packets -> dispatch ->
handlers (with DNS names) -> event maps -> packed -> a sink that drops them.

The documented mix, per 10 records as the probe passes them up for loopback traffic:
6 SYN+ACKs (3 connections, seen leaving the server and arriving at the client), 3
FIN/RSTs ending sockets begun earlier (with their totals, as a socket's close passes
them up), and 1 DNS answer naming a server connected to
soon after; batches of 100 records, as a 10 ms poll brings them at 10k records/s.
Also what the pluggy hook calls cost: the calls a batch takes, against its time.
Run: `.venv/bin/python tests/bench/pipeline_alone.py` (make bench runs it).
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))

from dns_messages import answer  # noqa: E402
from hostcore_net_flow import begin, end  # noqa: E402
from packets import ACK, FIN, RST, SYN, ipv4, tcp, udp  # noqa: E402

from hostcore import EventSpec, PacketKind, hookimpl  # noqa: E402
from hostcore.gc_tuning import streaming_collection  # noqa: E402
from hostcore.log import FailureLog  # noqa: E402
from hostcore.pipeline.accounting import Accounting  # noqa: E402
from hostcore.pipeline.context import Contexts  # noqa: E402
from hostcore.pipeline.dispatch import Dispatch  # noqa: E402
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions  # noqa: E402
from hostcore.probe import records  # noqa: E402
from hostcore.probe.cgroup import CgroupIndex, cgroup2_mount  # noqa: E402

BATCH = 100
RECORDS = 10_000
ROUNDS = 5
INGRESS, EGRESS = 0, 1


def mix() -> list[bytes]:
    """The documented mix, as ring-buffer records."""
    root_cgroup = os.stat(cgroup2_mount()).st_ino
    client_owner = records.OWNER.pack(4242, 4242, 1000, 2, 0, b"curl")
    server_owner = records.OWNER.pack(77, 77, 33, 3, 1, b"nginx")

    def record(
        data: bytes, direction: int, owner: bytes, connect_ns: int = 0, totals: bytes = b""
    ) -> bytes:
        flag = records.TOTALS_FOLLOW if totals else 0
        header = records.HEADER.pack(
            1, root_cgroup, 7, connect_ns, owner, len(data), direction | flag
        )
        return header + totals + data

    # What a socket's close passes up with its FIN or RST (struct totals).
    totals = records.TOTALS.pack(120, 4_000, 7, 9, 0, 250 << 3, 180)

    made: list[bytes] = []
    for group in range(RECORDS // 10):
        server = f"198.51.100.{group % 250}"  # 250 servers, each named by a few answers
        for n in range(3):
            client_port = 30000 + (3 * group + n) % 30000
            syn_ack = ipv4(server, "10.0.0.1", tcp(443, client_port, SYN | ACK, ack=group))
            made.append(record(syn_ack, EGRESS, server_owner))
            made.append(record(syn_ack, INGRESS, client_owner, connect_ns=1))
        for n in range(3):  # the client sockets of the group before end
            client_port = 30000 + (3 * (group - 1) + n) % 30000
            flags = FIN | ACK if n < 2 else RST
            fin = ipv4("10.0.0.1", server, tcp(client_port, 443, flags))
            made.append(record(fin, EGRESS, client_owner, totals=totals))
        name = f"n{group}.example."
        message = answer(name, (name, 60, "A", f"198.51.100.{(group + 1) % 250}"))
        dns = ipv4("127.0.0.53", "127.0.0.1", udp(53, 40000, message), proto=17)
        made.append(record(dns, INGRESS, client_owner))
    return made


class NullSink:
    def write(self, packed: bytes, event: object) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass


def records_per_s(events: Sequence[EventSpec], made: list[bytes]) -> float:
    """The best of ROUNDS runs over ``made``, in records per CPU second."""
    best = 0.0
    for _ in range(ROUNDS):
        contexts = Contexts(CgroupIndex(cgroup2_mount()))  # as a run has them
        pipeline = Pipeline(events, [], Accounting(0), PipelineOptions(host="bench"), contexts)
        pipeline.start({"null": NullSink()})
        reader = records.RecordReader()
        started = time.process_time()
        with streaming_collection():  # as `hostcore run` collects
            for k in range(0, len(made), BATCH):
                pipeline.feed(reader.packets(made[k : k + BATCH], 0, Counter()))
            pipeline.close()
        best = max(best, len(made) / (time.process_time() - started))
    return best


class _Idle:
    @hookimpl
    def hostcore_packets(self, packets: object) -> None:
        pass


def hook_call_us(handlers: int) -> float:
    """What one hook call costs (microseconds) over calling the method, with ``handlers``
    handlers registered, as a run with that many enabled events has them."""
    registered = [
        (EventSpec(f"e{n}", n, (), (), "", PacketKind.TCP_SYN_ACK, object), _Idle())
        for n in range(handlers)
    ]
    call = Dispatch(registered, None, Accounting(0), FailureLog())._packets[0].call
    method = registered[0][1].hostcore_packets
    batch: list[object] = []
    calls = 100_000
    started = time.process_time()
    for _ in range(calls):
        call(packets=batch)
    through_pluggy = time.process_time() - started
    started = time.process_time()
    for _ in range(calls):
        method(packets=batch)
    return (through_pluggy - (time.process_time() - started)) / calls * 1e6


def report() -> str:
    made = mix()
    lines = [
        "pipeline alone, one core (records per CPU second; 60% SYN+ACK, 30% FIN/RST, "
        f"10% DNS answers; {RECORDS:,} records in batches of {BATCH}; best of {ROUNDS}):",
        "",
        "| events | records/s | us/record | pluggy calls per batch | their share |",
        "|---|---|---|---|---|",
    ]
    for name, events in (("begin", [begin.SPEC]), ("flows", [begin.SPEC, end.SPEC])):
        rate = records_per_s(events, made)
        share = len(events) * hook_call_us(len(events)) / (BATCH / rate * 1e6)
        lines.append(f"| {name} | {rate:,.0f} | {1e6 / rate:.2f} | {len(events)} | {share:.2%} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(report())
