"""The socket sink against a real collector process, killed and restarted mid-stream, in clear
text and over TLS with certificates the tests make."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from certs import Authority, Issued

from hostcore.options import OptionError, parse_address
from hostcore.plugins import PluginError
from hostcore.testing import (
    KIT_EVENT_NAME,
    Collector,
    CollectorTls,
    SinkHost,
    reported_losses,
    synthetic_events,
)

MakeHost = Callable[..., SinkHost]


def seqs(events: list[dict[str, Any]]) -> Counter[int]:
    return Counter(e["data"]["seq"] for e in events if e["name"] == KIT_EVENT_NAME)


def through_a_restart(host: SinkHost, collector: Collector, count: int) -> list[dict[str, Any]]:
    """Emit ``count`` events: a third to the collector, a third while it is down (held in
    the sink's queue), a third after it came back; what the collector got of them all."""
    flows = list(synthetic_events(count))
    third = count // 3
    for data in flows[:third]:
        host.emit(data)
    collector.wait_for(third)  # read: what a killed collector had not read is lost
    collector.kill()
    for data in flows[third : 2 * third]:
        host.emit(data)
    collector.start()
    for data in flows[2 * third :]:
        host.emit(data)
    return collector.wait_for(count)


def test_restarted_collector_gets_everything_within_the_queue(
    sink_host: MakeHost, msgpack_collector: Collector
) -> None:
    host = sink_host({"socket": {"address": msgpack_collector.address, "queue_size": "1000"}})
    events = through_a_restart(host, msgpack_collector, 900)
    totals = host.close()
    assert seqs(events) == Counter(range(900))  # each exactly once, none lost
    assert not [name for name in totals if name.startswith(("sink_drops", "sink_undelivered"))]
    assert "lost_events" not in {e["name"] for e in events}


def test_beyond_the_queue_drops_are_counted_and_reported_to_the_collector(
    sink_host: MakeHost, tmp_path: Any
) -> None:
    collector = Collector("127.0.0.1:0", tmp_path / "collected.msgpack").start()
    try:
        options = {"address": collector.address, "queue_size": "100", "max_backoff_s": "0.1"}
        host = sink_host({"socket": options})
        flows = list(synthetic_events(600))
        for data in flows[:100]:
            host.emit(data)
        collector.wait_for(100)
        collector.kill()
        for data in flows[100:]:  # 500 while down: one in the sink's hand, 100 queued
            host.emit(data)
        collector.start()
        totals = host.close()  # reports the drops, then drains the queue to the collector
        drops = totals["sink_drops.socket"]
        events = collector.wait_for(600 - drops + 1)  # and the lost_events marker
    finally:
        collector.kill()
    # 100 queued, and one more if the sink's thread took the first before the queue filled.
    assert drops in (399, 400)
    assert seqs(events) == Counter(range(600 - drops))  # the oldest kept, each once
    assert reported_losses(events) == {"sink_drops.socket": drops}  # the collector is told


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("unix:/run/c.sock", (1, "/run/c.sock")),
        ("127.0.0.1:24000", (2, ("127.0.0.1", 24000))),
        ("[::1]:24000", (10, ("::1", 24000))),
    ],
)
def test_addresses(text: str, expected: tuple[int, Any]) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["unix:", "host", "host:port", ":80", "h:70000"])
def test_bad_addresses(text: str) -> None:
    with pytest.raises(OptionError, match="address"):
        parse_address(text)


def tls_options(authority: Authority, client: Issued | None = None) -> dict[str, str]:
    options = {"tls": "true", "ca_file": str(authority.cert_file)}
    if client is not None:
        options |= {"cert_file": str(client.cert_file), "key_file": str(client.key_file)}
    return options


def test_over_mutual_tls_a_restarted_collector_gets_everything_once(
    sink_host: MakeHost, authority: Authority, tmp_path: Path
) -> None:
    server = authority.issue("collector")
    tls = CollectorTls(server.cert_file, server.key_file, authority.cert_file)
    with Collector("127.0.0.1:0", tmp_path / "collected.msgpack", tls) as collector:
        options = {"address": collector.address, **tls_options(authority, authority.issue("a"))}
        host = sink_host({"socket": {**options, "max_backoff_s": "0.1"}})
        events = through_a_restart(host, collector, 600)
        totals = host.close()
    assert seqs(events) == Counter(range(600))
    assert not [name for name in totals if name.startswith("sink_")]


@pytest.mark.parametrize(
    ("case", "message"),
    [
        (
            "wrong CA",
            "not trusted for the name '127.0.0.1': self-signed certificate in certificate chain "
            "(verified against CA file",
        ),
        ("expired", "certificate is not trusted for the name '127.0.0.1': certificate has expired"),
        ("wrong name", "not trusted for the name 'other.example': Hostname mismatch"),
        ("no client certificate", "refused this host, which has no certificate (set cert_file"),
        ("client certificate of another CA", "refused this host's certificate"),
    ],
)
def test_a_refused_handshake_stops_the_run_at_its_start_saying_why(
    authority: Authority, tmp_path: Path, case: str, message: str
) -> None:
    other = Authority(tmp_path / "other", "other CA")
    server = authority.issue("collector", expired=case == "expired")
    tls = CollectorTls(server.cert_file, server.key_file, authority.cert_file)
    client = {
        "no client certificate": None,
        "client certificate of another CA": other.issue("a"),
    }.get(case, authority.issue("a"))
    options = tls_options(other if case == "wrong CA" else authority, client)
    if case == "wrong name":
        options["server_name"] = "other.example"
    with Collector("127.0.0.1:0", tmp_path / "collected.msgpack", tls) as collector:
        with pytest.raises(PluginError) as refused:
            SinkHost({"socket": {"address": collector.address, **options}})
        assert collector.events() == []  # nothing went out in clear text, or at all
    assert str(refused.value).startswith(f"sink 'socket': TLS with {collector.address}: ")
    assert message in str(refused.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ca_file": "/x"}, "ca_file need tls=true"),
        ({"tls": "yes"}, "tls must be true or false"),
        ({"tls": "true", "ca_file": "/nonexistent"}, "ca_file /nonexistent: No such file"),
        ({"tls": "true", "key_file": "/k"}, "key_file needs cert_file"),
        ({"tls": "true", "address": "unix:/run/c.sock"}, "tls is for TCP addresses"),
    ],
)
def test_bad_tls_options_say_what_to_fix(options: dict[str, str], message: str) -> None:
    with pytest.raises(PluginError, match=message):
        SinkHost({"socket": {"address": "127.0.0.1:1", **options}})
