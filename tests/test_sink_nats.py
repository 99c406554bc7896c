"""The nats sink and `hostcore tail` against a real nats-server with JetStream on file storage."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import nats
import pytest
from hostcore_nats.subjects import subject, token
from nats_server import NatsServer, tail
from runs import HOSTCORE, Hostcore, both_ends, flows
from traffic import AcceptServer, connect_once, no_syncookies
from waiting import READY_TIMEOUT_S

from hostcore.testing import KIT_EVENT_NAME, SinkHost, synthetic_events

MakeHost = Callable[..., SinkHost]


def seqs(events: list[dict[str, Any]]) -> Counter[int]:
    return Counter(e["data"]["seq"] for e in events if e["name"] == KIT_EVENT_NAME)


def test_server_killed_mid_burst_every_event_arrives_once(
    tmp_path: Path, sink_host: MakeHost
) -> None:
    with NatsServer(tmp_path / "store") as server:
        host = sink_host({"nats": {"url": server.url}}, host_name="node-a", drain_timeout_s=120)
        burst = list(synthetic_events(5000))
        for data in burst[:2500]:
            host.emit(data)
        server.kill()  # acks in flight are lost: those messages are published again
        for data in burst[2500:4000]:
            host.emit(data)
        sink = host.sinks["nats"]
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not sink.disconnections:  # it saw the server go: what was in flight goes again
            assert time.monotonic() < deadline, "the sink never saw the server go"
            time.sleep(0.05)
        server.start()  # the same port and store
        for data in burst[4000:]:
            host.emit(data)
        totals = host.close()
        stored = tail(server.url)
        last_ten = tail(server.url, "--start-seq", "4991")
        future = tail(server.url, "--since", "2100-01-01T00:00Z")
    assert seqs(stored) == Counter(range(5000))  # each exactly once, in the stream
    assert totals[f"events.{KIT_EVENT_NAME}"] == 5000
    assert not [name for name in totals if name.startswith("sink_")]  # no loss of any kind
    # Each acked once; an ack that says duplicate is for a re-sent one the stream had kept.
    assert sink.published == 5000 and sink.duplicates <= sink.retried
    assert last_ten == stored[-10:]  # a given point: stream sequence 4991 on
    assert future == []


@pytest.mark.usefixtures("root")  # `hostcore run` checks its capabilities first
def test_tail_errors_say_what_is_wrong(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "store") as server:
        empty = subprocess.run(
            [HOSTCORE, "tail", server.url, "--no-follow"], capture_output=True, text=True
        )
    gone = subprocess.run([HOSTCORE, "tail", server.url], capture_output=True, text=True)
    sink = f"nats:url={server.url}"
    no_bus = subprocess.run([HOSTCORE, "run", "--sink", sink], capture_output=True, text=True)
    unknown = subprocess.run([HOSTCORE, "tail", "kafka://x:9092"], capture_output=True, text=True)
    assert (empty.returncode, gone.returncode, unknown.returncode) == (2, 2, 2)
    assert no_bus.returncode == 2
    assert f"sink 'nats': cannot use JetStream at {server.url}" in no_bus.stderr
    assert "no stream 'HOSTCORE' on the server" in empty.stderr
    assert f"cannot reach NATS at {server.url}" in gone.stderr
    assert "no source reads 'kafka://x:9092'; sources: nats://" in unknown.stderr
    with_password = server.url.replace("nats://", "nats://alice:s3cret@")
    hidden = subprocess.run([HOSTCORE, "tail", with_password], capture_output=True, text=True)
    assert hidden.returncode == 2 and f"cannot reach NATS at {server.url}: " in hidden.stderr
    assert "s3cret" not in hidden.stderr  # a password never reaches a message or a log


def read_lines(process: subprocess.Popen[str], into: list[dict[str, Any]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        into.append(json.loads(line))


@pytest.mark.live
@pytest.mark.usefixtures("root")
def test_two_hosts_into_one_stream_and_tail_follows_both(tmp_path: Path) -> None:
    with NatsServer(tmp_path / "store") as server, AcceptServer() as accept, no_syncookies():
        runs = {
            name: Hostcore(tmp_path, ["--host-name", name, "--sink", f"nats:url={server.url}"])
            for name in ("node-a", "node.b*")  # a name with subject syntax in it
        }
        for run in runs.values():
            run.start()
        follower = subprocess.Popen(
            [HOSTCORE, "tail", server.url],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        followed: list[dict[str, Any]] = []
        reader = threading.Thread(target=read_lines, args=(follower, followed), daemon=True)
        reader.start()
        try:
            clients = [connect_once("127.0.0.1", accept.port) for _ in range(10)]
            files = {name: run.stop() for name, run in runs.items()}
            expected = Counter(f for c in clients for f in both_ends(*c, "127.0.0.1", accept.port))
            deadline = time.monotonic() + READY_TIMEOUT_S
            while any(
                flows([e for e in followed if e["host"] == name], {accept.port}) != expected
                for name in runs
            ):
                assert time.monotonic() < deadline, f"tail showed {len(followed)} events"
                time.sleep(0.05)
        finally:
            follower.send_signal(signal.SIGINT)  # the way to end a follow
            assert follower.wait(READY_TIMEOUT_S) == 0
            reader.join(READY_TIMEOUT_S)
        assert follower.stderr is not None
        assert follower.stderr.read() == ""  # ended quietly
        for name in runs:
            assert flows(files[name], {accept.port}) == expected  # each host saw each end
            # tail prints each host's events as that host's run wrote them, in its order (it
            # was stopped once it had this test's: other traffic of the host may follow)
            shown = [e for e in followed if e["host"] == name]
            assert shown == files[name][: len(shown)]
        only_b = tail(server.url, "--host", "node.b*")
        assert only_b == files["node.b*"]
        assert tail(server.url, "--event", "no_such_event") == []


def test_subjects_keep_host_names_to_one_token() -> None:
    assert subject("node-1", "net_flow_tcp_begin") == "hostcore.node-1.net_flow_tcp_begin"
    assert subject("web.prod.example", "x") == "hostcore.web_prod_example.x"
    assert token("a*b>c d\te") == "a_b_c_d_e"
    assert token("") == "_"


def test_the_plugin_provides_the_sink_and_the_source() -> None:
    listing = subprocess.run([HOSTCORE, "plugins"], capture_output=True, text=True, check=True)
    assert "nats: loaded (hostcore-nats 0.2.0) provides nats, nats://" in listing.stdout


def test_events_the_stream_refuses_to_store_are_counted_lost_not_retried(
    tmp_path: Path, sink_host: MakeHost, capsys: pytest.CaptureFixture[str]
) -> None:
    async def small_stream(url: str) -> None:  # made by nats-py: an independent client
        client = await nats.connect(url)
        await client.jetstream().add_stream(
            name="HOSTCORE", subjects=["hostcore.>"], max_msg_size=64
        )
        await client.close()

    with NatsServer(tmp_path / "store") as server:
        asyncio.run(small_stream(server.url))
        host = sink_host({"nats": {"url": server.url}})
        for data in synthetic_events(30):
            host.emit(data)
        totals = host.close()
        stored = tail(server.url)
    assert totals["sink_errors.nats"] == 31  # and the lost_events event that reports them
    assert stored == []
    captured = capsys.readouterr()
    assert "JetStream did not store an event" in captured.out + captured.err
    assert "message size exceeds maximum allowed" in captured.out + captured.err
