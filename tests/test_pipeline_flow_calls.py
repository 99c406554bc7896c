"""The pipeline's calls beyond packets: sockets open at start-up, clock ticks, flow-table losses."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hostcore_net_flow import end, failed
from list_sink import ListSink
from packets import ACK, FIN, SYN, ipv4, tcp

from hostcore import OpenSocket, hookimpl
from hostcore.decoder import Decoder
from hostcore.packet import Direction, Packet
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions

decode = Decoder().decode  # one decoder, its address cache, per test module
OPTIONS = PipelineOptions(host="h")


def fin_from(port: int, ns: int = 0) -> Packet:
    return decode(
        ipv4("192.0.2.10", "203.0.113.5", tcp(port, 443, FIN | ACK)), ns, Direction.EGRESS
    )


def test_open_sockets_reach_the_end_handler() -> None:
    sink = ListSink()
    pipeline = Pipeline([end.SPEC], [], Accounting(0), OPTIONS)
    pipeline.start({"list": sink})
    assert pipeline.wants_open_sockets
    pipeline.preload([OpenSocket("192.0.2.10", 40000, "203.0.113.5", 443, False, 9)])
    pipeline.feed([fin_from(40000)])
    pipeline.drain()  # the sink's thread has written what it was given
    [event] = sink.events
    assert (event["name"], event["data"]["begin"]) == ("net_flow_tcp_end", "pre_existing")


def test_clock_ticks_expire_unanswered_syns_with_the_configured_timeout() -> None:
    sink = ListSink()
    options = PipelineOptions("h", event_options={"net_flow_tcp_failed": {"syn_timeout_s": "0.5"}})
    pipeline = Pipeline([failed.SPEC], [], Accounting(0), options)
    pipeline.start({"list": sink})
    assert not pipeline.wants_open_sockets
    syn = decode(ipv4("192.0.2.10", "203.0.113.5", tcp(40000, 443, SYN)), 0, Direction.EGRESS)
    pipeline.feed([syn])
    pipeline.expire(499_999_999)
    pipeline.drain()
    assert sink.events == []
    pipeline.expire(500_000_000)
    pipeline.drain()
    assert [e["data"]["reason"] for e in sink.events] == ["unanswered"]


def test_flow_table_evictions_are_reported_as_losses(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(end, "OPEN_CONNECTIONS", 1)
    sink = ListSink()
    accounting = Accounting(0)
    pipeline = Pipeline([end.SPEC], [], accounting, OPTIONS)
    pipeline.start({"list": sink})
    syn_acks = [
        decode(ipv4("203.0.113.5", "192.0.2.10", tcp(443, port, SYN | ACK)), 0, Direction.INGRESS)
        for port in (40000, 40001)
    ]
    pipeline.feed(syn_acks)
    pipeline.report_losses(10)
    pipeline.drain()
    [lost] = [e for e in sink.events if e["name"] == "lost_events"]
    assert lost["data"]["lost"] == {"net_flow_tcp_end.flow_table_evictions": 1}


class _ExpireRaises(failed.TcpFailed):
    @hookimpl
    def hostcore_expire(self, now_ns: int) -> None:
        raise RuntimeError("boom")


def test_a_raising_expire_is_counted_as_a_plugin_error() -> None:
    accounting = Accounting(0)
    spec = replace(failed.SPEC, handler=_ExpireRaises)
    pipeline = Pipeline([spec], [], accounting, OPTIONS)
    pipeline.start({"list": ListSink()})
    pipeline.expire(1)
    assert accounting.counters["plugin_errors.net_flow_tcp_failed"] == 1
