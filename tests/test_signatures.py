"""Signatures in the pipeline: findings as events, chains, isolation, load rules, bounded state."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from dns_messages import answer
from hostcore_net_flow import begin
from hostcore_signatures import connection_scan, denied_domain, unexpected_listener
from hostcore_signatures.denied_domain import DenyList
from list_sink import ListSink
from packets import ACK, SYN, ipv4, tcp, udp

from hostcore import Report, SignatureContext, SignatureSpec
from hostcore.decoder import Decoder
from hostcore.events import Field
from hostcore.packet import Direction, Owner, OwnerSource, Packet
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions
from hostcore.signatures.loading import MAX_DEPTH, Enabled, enable, problems
from hostcore.testing import reported_losses

decode = Decoder().decode  # one decoder, its address cache, per test module

EVENTS = {begin.SPEC.name: begin.SPEC}
SECOND = 10**9


def outgoing(
    port: int,
    server: str = "198.18.0.2",
    pid: int = 100,
    at_s: float = 1,
    client_port: int | None = None,
) -> Packet:
    """The SYN+ACK arriving for a connection ``pid`` made to ``server:port``."""
    client_port = client_port or 40000 + port
    raw = ipv4(server, "198.18.0.1", tcp(port, client_port, SYN | ACK, ack=client_port))
    owner = Owner(pid, pid, 0, "curl", OwnerSource.CONNECTED)
    return decode(raw, int(at_s * SECOND), Direction.INGRESS, 5, 7, owner)


def dns_answer(question: str, cname: str, address: str) -> Packet:
    message = answer(question, (question, 60, "CNAME", cname), (cname, 60, "A", address))
    raw = ipv4("127.0.0.53", "198.18.0.1", udp(53, 999, message), proto=17)
    return decode(raw, SECOND, Direction.INGRESS, 5)


def incoming(port: int, peer_port: int = 50000) -> Packet:
    """The SYN+ACK a listener on ``port`` (pid 7, "nginx") sends a peer."""
    raw = ipv4("127.0.0.1", "127.0.0.9", tcp(port, peer_port, SYN | ACK, ack=peer_port))
    owner = Owner(7, None, 0, "nginx", OwnerSource.FOUND)
    return decode(raw, SECOND, Direction.EGRESS, 5, 8, owner)


def run(
    signatures: Sequence[SignatureSpec],
    packets: list[Packet],
    published: set[str] | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    accounting: Accounting | None = None,
) -> list[Mapping[str, Any]]:
    catalogue = {**EVENTS, **{spec.name: spec for spec in signatures}}
    enabled = enable(signatures, catalogue, options or {})
    sink = ListSink()
    options = PipelineOptions(host="host", published=published)
    pipeline = Pipeline([begin.SPEC], enabled, accounting or Accounting(0), options)
    pipeline.start({"list": sink})
    pipeline.feed(packets)
    pipeline.close()  # the sink's thread has written everything once it returns
    return sink.events


def test_a_finding_is_an_event_with_metadata_trigger_and_the_triggers_context() -> None:
    options = {"unexpected_listener": {"allowed_ports": [443]}}
    events = run([unexpected_listener.SPEC], [incoming(443), incoming(8080)], None, options)
    assert [e["name"] for e in events] == [
        "net_flow_tcp_begin",
        "net_flow_tcp_begin",
        "unexpected_listener",
    ]
    finding, trigger = events[2], events[1]
    assert finding["id"] == 6003 and finding["v"] == 1 and finding["host"] == "host"
    assert finding["timestamp"] == trigger["timestamp"]
    assert finding["context"] == trigger["context"]
    assert finding["context"]["comm"] == "nginx"
    assert finding["data"]["signature"] == {
        "id": "HCS-3",
        "name": "Incoming connection to an unexpected port",
        "version": "1.0.0",
        "severity": "medium",
        "description": unexpected_listener.SPEC.description,
        "tags": ["mitre-attack:T1571", "command-and-control"],
        "properties": {
            "Technique": "Non-Standard Port",
            "id": "attack-pattern--b18eae87-b469-4e14-b454-b171b416bc18",
        },
    }
    assert finding["data"]["triggered_by"] == [
        {key: trigger[key] for key in ("name", "id", "timestamp", "context", "data")}
    ]
    assert (finding["data"]["dst_port"], finding["data"]["src"]) == (8080, "127.0.0.9")


def test_events_a_signature_needs_feed_it_without_being_published() -> None:
    options = {"unexpected_listener": {"allowed_ports": []}}
    events = run([unexpected_listener.SPEC], [incoming(8080)], {"unexpected_listener"}, options)
    assert [e["name"] for e in events] == ["unexpected_listener"]


def test_the_consumed_events_data_filter_applies() -> None:
    """unexpected_listener consumes incoming begins only: an outgoing one to 8080 is not one."""
    options = {"unexpected_listener": {"allowed_ports": []}}
    events = run([unexpected_listener.SPEC], [outgoing(8080)], {"unexpected_listener"}, options)
    assert events == []


def test_denied_domain_matches_a_cname_chain_and_reports_once_per_connection() -> None:
    packets = [
        dns_answer("www.shop.test.", "edge.evil.test.", "198.18.0.2"),
        dns_answer("www.fine.test.", "edge.cdn.test.", "198.18.0.3"),
        outgoing(80),
        outgoing(80, server="198.18.0.3"),
        outgoing(443),
    ]
    options = {"denied_domain": {"domains": ["evil.test"]}}
    events = run([denied_domain.SPEC], packets, {"denied_domain"}, options)
    assert [{k: e["data"][k] for k in ("domain", "rule", "dst", "dst_port")} for e in events] == [
        {"domain": "edge.evil.test", "rule": "evil.test", "dst": "198.18.0.2", "dst_port": 80},
        {"domain": "edge.evil.test", "rule": "evil.test", "dst": "198.18.0.2", "dst_port": 443},
    ]
    trigger = events[0]["data"]["triggered_by"][0]
    assert trigger["data"]["dst_dns"] == ["www.shop.test", "edge.evil.test"]


@pytest.mark.parametrize(
    ("name", "rule"),
    [
        ("evil.test", "evil.test"),
        ("a.b.EVIL.test.", "evil.test"),
        ("notevil.test", None),
        ("evil.test.example", None),
        ("ads7.cdn.test", "ads?.cdn.test"),
        ("ads77.cdn.test", None),
        ("x.tracker.test", "*.tracker.test"),
        ("tracker.test", None),
    ],
)
def test_deny_list_entries_match_a_domain_and_below_or_a_glob(name: str, rule: str | None) -> None:
    assert DenyList(("evil.test", "ads?.cdn.test", "*.tracker.test")).rule(name) == rule


def scan_options(**values: Any) -> dict[str, dict[str, Any]]:
    return {"connection_scan": {"max_distinct": 5, "window_s": 10, **values}}


def test_a_scan_is_reported_once_per_window_and_one_port_is_no_scan() -> None:
    scan = [outgoing(port, at_s=1 + port / 1000) for port in range(1, 13)]
    one_port = [outgoing(80, pid=200, at_s=2 + n / 100, client_port=41000 + n) for n in range(12)]
    events = run([connection_scan.SPEC], scan + one_port, {"connection_scan"}, scan_options())
    assert len(events) == 1  # ports 1-6 cross the limit; 7-12 fall in the quiet window
    data = events[0]["data"]
    assert data["distinct_ports"] == [1, 2, 3, 4, 5, 6]
    assert data["distinct_hosts"] == ["198.18.0.2"]
    assert events[0]["context"]["pid"] == 100
    later = [outgoing(port, at_s=20 + port / 1000, client_port=42000 + port) for port in range(6)]
    again = run([connection_scan.SPEC], scan + later, {"connection_scan"}, scan_options())
    assert [e["data"]["distinct_ports"] for e in again] == [[1, 2, 3, 4, 5, 6], [0, 1, 2, 3, 4, 5]]


def test_scan_windows_slide_so_slow_connections_are_no_scan() -> None:
    slow = [outgoing(port, at_s=port * 3) for port in range(1, 30)]  # 3 s apart, window 10 s
    assert run([connection_scan.SPEC], slow, {"connection_scan"}, scan_options()) == []


def test_scan_state_stays_bounded_under_many_processes() -> None:
    accounting = Accounting(0)
    catalogue = {**EVENTS, connection_scan.SPEC.name: connection_scan.SPEC}
    [enabled] = enable([connection_scan.SPEC], catalogue, scan_options(max_processes=100))
    counts = accounting.count
    signature = connection_scan.SPEC.handler(SignatureContext(counts, enabled.options))

    def report(data: Mapping[str, Any], triggered_by: Sequence[Mapping[str, Any]]) -> None:
        raise AssertionError("one connection per process is no scan")

    for pid in range(10_000):
        event = {
            "timestamp": SECOND + pid,
            "context": {"pid": pid, "comm": "client"},
            "data": {"dst": "198.18.0.2", "dst_port": 80},
        }
        signature.on_event(event, report)
    assert isinstance(signature, connection_scan.ConnectionScan)
    assert len(signature._processes) == 100
    assert accounting.counters["connection_scan.process_evictions"] == 10_000 - 100
    # A window later, everything has expired.
    signature.on_event({**event, "timestamp": 30 * SECOND}, report)  # type: ignore[dict-item]
    assert len(signature._processes) == 1


class Raises:
    def __init__(self, context: SignatureContext) -> None:
        pass

    def on_event(self, event: Mapping[str, Any], report: Report) -> None:
        raise ZeroDivisionError("signature bug")


class Echo:
    """Reports every event it consumes, with the event's name."""

    def __init__(self, context: SignatureContext) -> None:
        pass

    def on_event(self, event: Mapping[str, Any], report: Report) -> None:
        report({"of": event["name"]}, [event])


def signature(name: str, event_id: int, consumes: tuple[str, ...], handler: Any = Echo) -> Any:
    return SignatureSpec(
        name=name,
        id=event_id,
        signature_id=f"T-{event_id}",
        title=name,
        version="1",
        severity="low",
        description="a test signature",
        consumes=consumes,
        handler=handler,
        fields=(Field("of", "string"),),
        plugin="tests",
    )


def test_a_raising_signature_is_isolated_and_counted() -> None:
    accounting = Accounting(0)
    specs = [
        signature("raises", 7001, ("net_flow_tcp_begin",), Raises),
        signature("echo", 7002, ("net_flow_tcp_begin",)),
    ]
    events = run(specs, [outgoing(80), outgoing(81)], None, None, accounting)
    assert [e["name"] for e in events].count("echo") == 2
    assert [e["name"] for e in events].count("net_flow_tcp_begin") == 2
    assert accounting.counters["signature_errors.raises"] == 2
    # Reported to the sink in a lost_events event, at the latest as the run closes.
    assert reported_losses(events) == {"signature_errors.raises": 2}


def test_signatures_consume_findings_down_a_chain() -> None:
    first = signature("first", 7001, ("net_flow_tcp_begin",))
    second = signature("second", 7002, ("first",))
    events = run([first, second], [outgoing(80)], {"second"})  # second alone pulls in first
    [finding] = events
    assert finding["name"] == "second" and finding["data"]["of"] == "first"
    [trigger] = finding["data"]["triggered_by"]
    assert trigger["name"] == "first"
    assert trigger["data"]["triggered_by"][0]["name"] == "net_flow_tcp_begin"


def test_findings_pass_the_users_data_filters() -> None:
    from hostcore.pipeline.filters import data_filter, data_tests

    first = signature("first", 7001, ("net_flow_tcp_begin",))
    catalogue = {**EVENTS, "first": first}
    keep_none = data_tests([data_filter("first", "of=nothing", catalogue)])
    sink = ListSink()
    accounting = Accounting(0)
    enabled = enable([first], catalogue, {})
    options = PipelineOptions(host="h", data_filters=keep_none, published={"first"})
    pipeline = Pipeline([begin.SPEC], enabled, accounting, options)
    pipeline.start({"l": sink})
    pipeline.feed([outgoing(80)])
    pipeline.close()
    assert sink.events == []
    assert accounting.counters["events_filtered.first"] == 1


def chain(length: int) -> dict[str, SignatureSpec]:
    specs = {"s0": signature("s0", 7000, ("net_flow_tcp_begin",))}
    for n in range(1, length):
        specs[f"s{n}"] = signature(f"s{n}", 7000 + n, (f"s{n - 1}",))
    return specs


def test_load_rules_unknown_events_cycles_and_depth() -> None:
    assert problems(chain(MAX_DEPTH), EVENTS) == {}
    too_deep = problems(chain(MAX_DEPTH + 1), EVENTS)
    assert list(too_deep) == [f"s{MAX_DEPTH}"]
    assert f"chain of {MAX_DEPTH + 1} signatures" in too_deep[f"s{MAX_DEPTH}"]

    cycle = {
        "a": signature("a", 7001, ("net_flow_tcp_begin", "b")),
        "b": signature("b", 7002, ("a",)),
        "c": signature("c", 7003, ("b",)),  # consumes a member of the cycle
        "d": signature("d", 7004, ("net_flow_tcp_begin",)),
    }
    found = problems(cycle, EVENTS)
    assert found["a"] == found["b"]
    assert found["a"].startswith("is in a cycle of signatures: ")
    assert found["c"] == "consumes 'b', which no installed plugin provides"
    assert "d" not in found

    unknown = {"u": signature("u", 7001, ("net_flow_tcp_end",))}
    assert problems(unknown, EVENTS) == {
        "u": "consumes 'net_flow_tcp_end', which no installed plugin provides"
    }
    bad_filter = {"f": signature("f", 7001, ("net_flow_tcp_begin.data.nope=1",))}
    assert "has no field 'nope'" in problems(bad_filter, EVENTS)["f"]


def test_an_event_consumed_if_installed_may_be_missing() -> None:
    """connection_scan consumes net_flow_tcp_failed where it exists; here it does not."""
    assert problems({"connection_scan": connection_scan.SPEC}, EVENTS) == {}
    catalogue = {**EVENTS, "connection_scan": connection_scan.SPEC}
    [enabled] = enable([connection_scan.SPEC], catalogue, {})
    assert isinstance(enabled, Enabled)
    assert list(enabled.consumes) == ["net_flow_tcp_begin"]


def test_a_spec_with_an_unknown_severity_or_a_core_field_is_refused() -> None:
    with pytest.raises(ValueError, match="severity must be one of info, low"):
        SignatureSpec("x", 1, "X", "x", "1", "urgent", "", (), Echo)
    with pytest.raises(ValueError, match="fills the field 'signature' itself"):
        SignatureSpec("x", 1, "X", "x", "1", "low", "", (), Echo, (Field("signature", "map"),))
