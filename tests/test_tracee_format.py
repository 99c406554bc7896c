"""The Tracee output format, read line by line as Tracee v0.24.1 reads it.

Every line is decoded by tests/tracee_decoder.py (Tracee's trace.Event and
Argument.UnmarshalJSON rules) and compared with golden lines written from Tracee's
definitions (tests/tracee_sample.py): lines from a live run (real curl, a process
in its own pid, UTS and mount namespaces, in a container's cgroup), from the
replayed capture corpus with every signature, and lost_events.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import tshark_oracle
from capture_tools import replay
from conftest import CONTAINER_ID
from hostcore_net_flow import begin, end
from hostcore_signatures import unexpected_listener
from list_sink import ListSink
from packets import ACK, SYN, ipv4, tcp
from runs import HOSTCORE
from tracee_decoder import MAX_LINE, Rejected, decode_line, origin
from tracee_sample import DOCS_NET_PACKET_TCP_2023, FINDING, NET_FLOW_TCP_BEGIN, NET_FLOW_TCP_FIELDS
from traffic import AcceptServer, no_syncookies
from waiting import wait_until

from hostcore.decoder import Decoder
from hostcore.packet import Direction
from hostcore.pipeline import tracee
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions
from hostcore.probe.clock import boot_to_epoch_offset_ns
from hostcore.signatures.loading import enable
from hostcore.sinks.stdout import json_line

decode = Decoder().decode  # one decoder, its address cache, per test module

GOLDEN_BEGIN: dict[str, Any] = json.loads(NET_FLOW_TCP_BEGIN)
GOLDEN_FINDING: dict[str, Any] = json.loads(FINDING)
# The hostcore context that Tracee's golden begin line describes.
GOLDEN_CONTEXT = {
    "pid": 4242,
    "tid": 4242,
    "comm": "curl",
    "uid": 1000,
    "cgroup_id": 5650,
    "container_id": "",
    "owner": "connected",
    "ppid": 4200,
    "ns_pid": 4242,
    "ns_tid": 4242,
    "ns_ppid": 4200,
    "start_time": 1795829999873456789,
    "process_start_time": 1795829999873456789,
    "parent_start_time": 1795829000000000000,
    "pid_ns": 4026531836,
    "mnt_ns": 4026531841,
    "nodename": "node-1",
    "cpu": 1,
}
GOLDEN_DATA = {arg["name"]: arg["value"] for arg in GOLDEN_BEGIN["args"]}
# Properties every finding of Tracee carries (findings.go getMetadataFromSignatureMetadata).
TRACEE_PROPERTIES = {
    "Category",
    "Severity",
    "Technique",
    "external_id",
    "id",
    "signatureID",
    "signatureName",
}


def tracee_formula(task_id: int, start_time_ns: int) -> int:
    """HashTaskID (pkg/datastores/process/taskid.go): the start time cut to 0.1 s, then
    murmur.HashU32AndU64: both in network byte order, one after the other."""
    rounded = start_time_ns // 100_000_000 * 100_000_000
    return tracee.murmur32(struct.pack(">IQ", task_id, rounded))


def read_as_tracee(events: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Each event as the stdout sink prints it, decoded as Tracee decodes the line."""
    return [decode_line(json_line(event).rstrip("\n")) for event in events]


def assert_shaped_like(rendered: Mapping[str, Any], golden: Mapping[str, Any]) -> None:
    """Tracee's keys in Tracee's order, each value of the JSON type Tracee gives it."""
    assert list(rendered) == list(golden)
    for key, value in rendered.items():
        if key == "stackAddresses" and rendered["eventName"] == "lost_events":
            assert value is None  # not derived from a packet: no stack, a nil slice
        elif key == "container":
            assert set(value) <= {"id"} and (value.get("id") or "") == rendered["containerId"]
        else:
            assert type(value) is type(golden[key]), key
    for key in ("executable", "contextFlags", "kubernetes"):
        assert {k: type(v) for k, v in rendered[key].items()} == {
            k: type(v) for k, v in golden[key].items()
        }
    assert rendered["argsNum"] == len(rendered["args"])
    assert all(list(arg) == ["name", "type", "value"] for arg in rendered["args"])


def test_the_reader_takes_the_golden_lines() -> None:
    event = decode_line(NET_FLOW_TCP_BEGIN)
    assert (event["eventId"], event["hostProcessId"], event["matchedPolicies"]) == (
        2013,
        4242,
        [""],
    )
    assert [(a["name"], a["type"]) for a in event["args"]] == NET_FLOW_TCP_FIELDS
    assert [a["value"] for a in event["args"]][3:5] == [40000, 443]
    finding = decode_line(FINDING)
    assert finding["metadata"]["Properties"]["Severity"] == 2.0  # an interface{}: float64
    detected = finding["args"][-1]
    assert (detected["name"], detected["value"]["id"]) == ("detectedFrom", 2013)
    assert origin(event) == origin(finding) == "host"


def _mutated(**changes: Any) -> str:
    return json.dumps({**GOLDEN_BEGIN, **changes}, separators=(",", ":"))


def _with_arg(name: str, kind: str, value: Any) -> str:
    return _mutated(args=[*GOLDEN_BEGIN["args"], {"name": name, "type": kind, "value": value}])


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (DOCS_NET_PACKET_TCP_2023, "unrecognized argument type u16 of argument src_port"),
        (_with_arg("port", "int", 80), "unrecognized argument type int of argument port"),
        (_with_arg("port", "uint16", 65536), "of type uint16"),
        (_with_arg("total", "int64", 1.5), "of type int64"),
        (_with_arg("names", "[]string", "a.test"), "[]string: type error"),
        (_mutated(cgroupId=-1), "of type uint"),
        (_mutated(eventId=2013), "invalid use of ,string"),
        (_mutated(threadEntityId=2**32), "of type uint32"),
        (_mutated(processId="4242"), "cannot unmarshal string"),
        (_mutated(timestamp=float("nan")), "invalid character 'N'"),
        (_mutated(hostName="x" * MAX_LINE), "token too long"),
    ],
)
def test_the_reader_rejects_what_tracee_rejects(line: str, reason: str) -> None:
    with pytest.raises(Rejected, match=re.escape(reason)):
        decode_line(line)


def test_murmur_and_the_task_hash_are_tracee_s() -> None:
    # common/murmur/murmur_test.go at v0.24.1: Murmur32 and HashU32AndU64 vectors.
    assert tracee.murmur32(b"") == 0xAC1E97D9
    assert tracee.murmur32(bytes([1, 2, 3, 4])) == 0xB503CC53
    assert tracee.murmur32(bytes(range(1, 9))) == 0x66CB9E81
    assert tracee.murmur32(b"\xaa" * 16) == 0x837E5743
    pairs = {(0, 0): 0xF6C56B4A, (1, 2): 0xD25F0E74, (0x12345678, 0x123456789ABCDEF0): 0xB065052C}
    pairs |= {
        (0xFFFFFFFF, 0): 0x6D045877,
        (0, 2**64 - 1): 0xECE98CF5,
        (2**32 - 1, 2**64 - 1): 0xFFA282FC,
    }
    for (task, start), expected in pairs.items():
        assert tracee.murmur32(struct.pack(">IQ", task, start)) == expected
    assert tracee.entity_id(4242, 1795829999873456789) == tracee_formula(4242, 1795829999800000000)
    assert tracee.entity_id(4242, 1795829999873456789) != tracee_formula(4242, 1795829999900000000)
    assert (tracee.entity_id(None, 5), tracee.entity_id(7, None)) == (0, 0)


def _pipeline(
    sink: ListSink, accounting: Accounting | None = None, signatures: Sequence[Any] = ()
) -> Pipeline:
    options = PipelineOptions(host="agent", output_format="tracee")
    pipeline = Pipeline([begin.SPEC, end.SPEC], signatures, accounting or Accounting(0), options)
    pipeline.start({"list": sink})
    return pipeline


def test_a_begin_renders_as_tracee_s_golden_line() -> None:
    sink = ListSink()
    pipeline = _pipeline(sink)
    pipeline.publish(
        "net_flow_tcp_begin", 2012, GOLDEN_BEGIN["timestamp"], GOLDEN_DATA, GOLDEN_CONTEXT
    )
    pipeline.close()
    [event] = sink.events
    assert event == GOLDEN_BEGIN  # hostName is the process's nodename, not the agent's "agent"
    assert read_as_tracee(sink.events) == [decode_line(NET_FLOW_TCP_BEGIN)]


def test_a_finding_renders_as_tracee_renders_its_own() -> None:
    sink = ListSink()
    catalogue = {
        begin.SPEC.name: begin.SPEC,
        unexpected_listener.SPEC.name: unexpected_listener.SPEC,
    }
    enabled = enable([unexpected_listener.SPEC], catalogue, {})
    pipeline = _pipeline(sink, signatures=enabled)
    # A listener's SYN+ACK leaving (an incoming connection to port 8080), owner unknown.
    syn_ack = ipv4("127.0.0.1", "127.0.0.9", tcp(8080, 50000, SYN | ACK, ack=50000))
    pipeline.feed([decode(syn_ack, GOLDEN_BEGIN["timestamp"], Direction.EGRESS, 5, 8)])
    pipeline.close()
    source, finding = sink.events
    assert_shaped_like(finding, GOLDEN_FINDING)
    context_keys = list(GOLDEN_FINDING)[: list(GOLDEN_FINDING).index("eventId")]
    assert {k: finding[k] for k in context_keys} == {k: source[k] for k in context_keys}
    assert (finding["eventId"], finding["eventName"]) == ("1006003", "unexpected_listener")
    *own, detected = finding["args"]
    assert [(a["name"], a["type"]) for a in own] == [
        ("dst", "string"),
        ("dst_port", "uint16"),
        ("src", "string"),
    ]
    assert detected == {
        "name": "detectedFrom",
        "type": "unknown",
        "value": {
            "args": source["args"],
            "id": 2013,
            "name": "net_flow_tcp_begin",
            "returnValue": 0,
        },
    }
    assert list(detected["value"]) == sorted(detected["value"])  # a Go map: keys sorted
    metadata = finding["metadata"]
    assert list(metadata) == list(GOLDEN_FINDING["metadata"])
    properties = metadata["Properties"]
    assert set(properties) == TRACEE_PROPERTIES and list(properties) == sorted(properties)
    assert properties == {
        "Category": "command-and-control",
        "Severity": 2,  # medium
        "Technique": "Non-Standard Port",
        "external_id": "T1571",
        "id": "attack-pattern--b18eae87-b469-4e14-b454-b171b416bc18",
        "signatureID": "HCS-3",
        "signatureName": unexpected_listener.SPEC.title,
    }
    assert (metadata["Version"], metadata["Tags"]) == ("1.0.0", list(unexpected_listener.SPEC.tags))
    [read] = read_as_tracee([finding])
    assert (
        read["args"][-1]["value"]["id"] == 2013 and read["metadata"]["Properties"]["Severity"] == 2
    )


def test_lost_events_reads_as_tracee() -> None:
    sink = ListSink()
    accounting = Accounting(0)
    pipeline = _pipeline(sink, accounting=accounting)
    accounting.count("plugin_errors.net_flow_tcp_begin", 3)
    accounting.count("dns.evictions", 2)
    pipeline.report_losses(10**18)
    pipeline.close()
    [lost] = sink.events
    assert_shaped_like(lost, GOLDEN_BEGIN)
    assert (lost["eventId"], lost["hostName"], lost["processId"]) == ("1000001", "agent", 0)
    assert [(a["name"], a["type"]) for a in lost["args"]] == [
        ("lost", "map[string]int64"),
        ("total", "int64"),
        ("interval_start", "int64"),
        ("interval_end", "int64"),
    ]
    [read] = read_as_tracee(sink.events)
    assert read["args"][0]["value"] == {"dns.evictions": 2, "plugin_errors.net_flow_tcp_begin": 3}
    assert list(lost["args"][0]["value"]) == sorted(lost["args"][0]["value"])


def test_a_value_out_of_its_declared_type_keeps_the_line_readable() -> None:
    """A plugin's value that Tracee cannot read under the declared type gets a type it can."""
    sink = ListSink()
    pipeline = _pipeline(sink)
    data = {**GOLDEN_DATA, "src_port": 70000, "src_dns": "not-a-list"}
    pipeline.publish("net_flow_tcp_begin", 2012, 1, data, GOLDEN_CONTEXT)
    pipeline.close()
    [read] = read_as_tracee(sink.events)
    assert [(a["name"], a["type"]) for a in read["args"]][3:6] == [
        ("src_port", "int64"),
        ("dst_port", "uint16"),
        ("src_dns", "string"),
    ]


def test_every_event_and_finding_of_the_corpus_reads_as_tracee(tmp_path: Path) -> None:
    config = tmp_path / "hostcore.toml"
    config.write_text('[signatures.denied_domain]\ndomains = ["wikimedia.org"]\n')
    files = sorted(str(p) for p in tshark_oracle.CORPUS.glob("*.pcap*"))
    events = replay(
        tmp_path,
        *files,
        "--format",
        "tracee",
        "--config",
        str(config),
        "--events",
        "flows,net_flow_tcp_failed,signatures",
        "--local-net",  # nmap's scanme in zeek_nmap-vsn.pcap: connections to it are incoming
        "64.13.134.52/32",
    )
    read = read_as_tracee(events)
    names = {event["eventName"] for event in read}
    assert names >= {
        "net_flow_tcp_begin",
        "net_flow_tcp_end",
        "net_flow_tcp_failed",
        "denied_domain",
        "connection_scan",
        "unexpected_listener",
        "lost_events",  # decode errors in some captures
    }
    for rendered, decoded in zip(events, read, strict=True):
        golden = GOLDEN_FINDING if "metadata" in rendered else GOLDEN_BEGIN
        assert_shaped_like(rendered, golden)
        # Tracee's own id, or one outside every range of Tracee's (0 to 9999)
        assert decoded["eventId"] in (2013, 2014) or decoded["eventId"] > tracee.OUTSIDE_TRACEE
        if "metadata" in rendered:
            assert set(decoded["metadata"]["Properties"]) == TRACEE_PROPERTIES
            detected = decoded["args"][-1]["value"]
            assert detected["name"] in {"net_flow_tcp_begin", "net_flow_tcp_failed"}
    begins = [e for e in read if e["eventName"] == "net_flow_tcp_begin"]
    assert {e["eventId"] for e in begins} == {2013}
    # Tracee's own seven args, then hostcore's own as extra args
    assert [(a["name"], a["type"]) for a in begins[0]["args"]] == [
        *NET_FLOW_TCP_FIELDS,
        ("community_id", "string"),
        ("handshake_ns", "uint64"),
    ]


# Live: curl on the host, and Python clients in a container's cgroup, one in pid, UTS and
# mount namespaces of its own (a started container), one in none (a container's init).

NODENAME = "hc-tracee-ns"
CLIENT = (
    "import socket, sys; s = socket.create_connection(('127.0.0.1', int(sys.argv[1]))); s.recv(1)"
)


class HeldServer(AcceptServer):
    """Accepts connections and holds them open until ``release``: their clients live on."""

    def __init__(self) -> None:
        self.held: dict[int, socket.socket] = {}  # by client port
        super().__init__()

    def took(self, conn: socket.socket, peer: tuple[str, int]) -> None:
        self.held[peer[1]] = conn

    def release(self) -> None:
        for conn in self.held.values():
            conn.sendall(b"HTTP/1.0 204 No Content\r\n\r\n")
            conn.close()
        self.close()


class TraceeRun:
    """``hostcore run --format tracee``, its standard output read line by line as it comes."""

    def __init__(self, *args: str) -> None:
        self.process = subprocess.Popen(
            [HOSTCORE, "run", "--format", "tracee", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stderr is not None
        for line in self.process.stderr:
            if '"event": "ready"' in line:
                break
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line.rstrip("\n"))

    def begins(self, port: int) -> list[dict[str, Any]]:
        """The begin events (as Tracee reads them) of connections from client ``port``."""
        read = [decode_line(line) for line in list(self.lines) if f'"value":{port}' in line]
        return [
            e
            for e in read
            if e["eventName"] == "net_flow_tcp_begin"
            and e["args"][0]["value"] == "outgoing"  # conn_direction
            and e["args"][3]["value"] == port  # src_port
        ]

    def stop(self) -> list[str]:
        self.process.send_signal(signal.SIGINT)
        assert self.process.wait(timeout=60) == 0
        self._reader.join(timeout=60)
        return self.lines

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def _children(pid: int) -> list[int]:
    return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def _proc_facts(pid: int) -> dict[str, Any]:
    """What the test itself reads of a live process, to compare with hostcore's lines."""
    status = dict(
        line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    ppid = int(status["PPid"])
    parent_ns = Path(f"/proc/{ppid}/status").read_text().split("NSpid:\t")[1].split("\n")[0]
    return {
        "ns_pid": int(status["NSpid"].split()[-1]),
        "ppid": ppid,
        "parent_ns_pid": int(parent_ns.split()[-1]),
        "start_ns": boot_to_epoch_offset_ns() + ticks * 10**9 // os.sysconf("SC_CLK_TCK"),
        "pid_ns": os.stat(f"/proc/{pid}/ns/pid").st_ino,
        "mnt_ns": os.stat(f"/proc/{pid}/ns/mnt").st_ino,
        "parent_pid_ns": os.stat(f"/proc/{ppid}/ns/pid").st_ino,
    }


def _client_in(cgroup: Path, namespaces: list[str], port: int) -> subprocess.Popen[str]:
    """The Python client in ``cgroup``, under `unshare NAMESPACES` when there are some."""
    body = f'{sys.executable} -c "{CLIENT}" {port}; :'  # ':' keeps sh as the parent
    if namespaces:
        body = f"hostname {NODENAME}; {body}"
        command = ["unshare", *namespaces, "--fork", "sh", "-c", body]
    else:
        command = ["sh", "-c", body]
    join = f'echo $$ > "{cgroup}/cgroup.procs" && exec "$@"'
    return subprocess.Popen(["sh", "-c", join, "sh", *command], text=True)


def _leaf(pid: int) -> int:
    """The process at the end of a chain of single children: the client itself."""
    while children := _children(pid):
        pid = children[-1]
    return pid


@pytest.fixture
def tracee_run() -> Iterator[TraceeRun]:
    run = TraceeRun("--events", "flows,unexpected_listener")
    try:
        yield run
    finally:
        run.kill()


@pytest.mark.live
@pytest.mark.usefixtures("root")
def test_a_live_run_reads_as_tracee_with_each_process_s_own_ids(
    tracee_run: TraceeRun, container_cgroup: Path
) -> None:
    server = HeldServer()
    with no_syncookies():
        curl = subprocess.Popen(
            ["curl", "-sS", "-o", "/dev/null", "--noproxy", "*", f"http://127.0.0.1:{server.port}/"]
        )
        started = _client_in(container_cgroup, ["--pid", "--uts", "--mount"], server.port)
        init = _client_in(container_cgroup, [], server.port)
        wait_until(lambda: len(server.held) == 3, "three held connections")
    clients = {"curl": curl.pid, "started": _leaf(started.pid), "init": _leaf(init.pid)}
    by_pid = {}
    for port in server.held:
        [outgoing] = wait_until(
            lambda p=port: tracee_run.begins(p)[:1], f"the begin of port {port}"
        )
        by_pid[outgoing["hostProcessId"]] = outgoing
    facts = {name: _proc_facts(pid) for name, pid in clients.items()}  # while they live
    server.release()
    for process in (curl, started, init):
        process.wait(timeout=30)
    lines = tracee_run.stop()
    read = [decode_line(line) for line in lines]  # every line it printed, any process's
    assert read and all(e["matchedPolicies"] == [""] for e in read)
    for name, pid in clients.items():
        event, fact = by_pid[pid], facts[name]
        assert event["processId"] == event["threadId"] == fact["ns_pid"]
        assert event["hostThreadId"] == pid and event["hostParentProcessId"] == fact["ppid"]
        same_ns = fact["parent_pid_ns"] == fact["pid_ns"]
        assert event["parentProcessId"] == (fact["parent_ns_pid"] if same_ns else 0)
        assert (event["pidNamespace"], event["mountNamespace"]) == (fact["pid_ns"], fact["mnt_ns"])
        assert abs(event["threadStartTime"] - fact["start_ns"]) < 1_000_000
        assert event["threadEntityId"] == tracee_formula(pid, event["threadStartTime"])
        assert event["processEntityId"] == event["threadEntityId"]  # a single thread
        assert event["parentEntityId"] != 0
        assert 0 <= event["processorId"] < os.cpu_count()  # type: ignore[operator]
    curl_event, started_event, init_event = (
        by_pid[clients[n]] for n in ("curl", "started", "init")
    )
    assert curl_event["processName"] == "curl" and curl_event["processId"] == curl.pid
    assert curl_event["parentProcessId"] == os.getpid()  # curl's parent: this test
    assert curl_event["hostName"] == os.uname().nodename and origin(curl_event) == "host"
    assert started_event["processId"] not in (0, clients["started"])
    assert started_event["parentProcessId"] == 1  # sh, the first process of the namespace
    assert started_event["hostName"] == NODENAME
    assert started_event["containerId"] == CONTAINER_ID and origin(started_event) == "container"
    assert init_event["containerId"] == CONTAINER_ID and origin(init_event) == "container-init"
    assert init_event["hostName"] == os.uname().nodename
    findings = [e for e in read if e["eventName"] == "unexpected_listener"]
    ours = [f for f in findings if f["args"][1]["value"] == server.port]
    assert ours and all(f["args"][-1]["name"] == "detectedFrom" for f in ours)
    assert {f["metadata"]["Properties"]["signatureID"] for f in ours} == {"HCS-3"}
