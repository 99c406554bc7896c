"""The net_flow_tcp_failed rules: this host's SYNs refused by a RST or left unanswered."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

import pytest
from hostcore_net_flow import failed
from packets import ACK, RST, SYN
from sample_connection import CLIENT, OUTGOING, SERVER, segment

from hostcore import EventContext
from hostcore.packet import Direction

SECOND = 10**9


class Run:
    """A handler with a 2 s timeout, and what it emitted as (timestamp, data)."""

    def __init__(self, options: Mapping[str, str] | None = None) -> None:
        self.counts: Counter[str] = Counter()
        self.events: list[tuple[int, Mapping[str, Any]]] = []
        context = EventContext(
            count=lambda name, n: self.counts.update({name: n}),
            emit=self.emit,
            options=options if options is not None else {"syn_timeout_s": "2"},
        )
        self.handler = failed.TcpFailed(context)

    def emit(self, timestamp_ns: int, data: Mapping[str, Any], source: object = None) -> None:
        self.events.append((timestamp_ns, data))


def syn(ns: int = 0, seq: int = 1000) -> Any:
    return segment(Direction.EGRESS, CLIENT, SERVER, SYN, seq=seq, ack=0, ns=ns)


def test_syn_answered_by_rst_is_refused() -> None:
    run = Run()
    rst = segment(Direction.INGRESS, SERVER, CLIENT, RST | ACK, seq=0, ack=1001, ns=500)
    run.handler.hostcore_packets([syn(), rst])
    [(timestamp, data)] = run.events
    assert timestamp == 500
    assert data == {**OUTGOING, "reason": "refused"}
    assert list(data) == [field.name for field in failed.SPEC.fields]


def test_syn_left_unanswered_fails_at_the_timeout_on_a_clock_tick() -> None:
    run = Run()
    run.handler.hostcore_packets([syn(ns=10, seq=1), syn(ns=SECOND, seq=1)])  # a retransmission
    run.handler.hostcore_expire(2 * SECOND + 9)
    assert run.events == []
    run.handler.hostcore_expire(2 * SECOND + 10)
    [(timestamp, data)] = run.events
    assert (timestamp, data["reason"]) == (2 * SECOND + 10, "unanswered")
    run.handler.hostcore_packets([syn(ns=3 * SECOND, seq=1)])  # sent again after the report
    run.handler.hostcore_expire(60 * SECOND)
    assert len(run.events) == 1
    run.handler.hostcore_packets([syn(ns=61 * SECOND, seq=2)])  # a new attempt: a new SYN
    run.handler.hostcore_expire(63 * SECOND)
    assert len(run.events) == 2


def test_a_later_packet_expires_it_too() -> None:
    run = Run()
    other = segment(Direction.EGRESS, ("192.0.2.10", 40001), SERVER, SYN, ns=3 * SECOND)
    run.handler.hostcore_packets([syn(ns=0), other])
    assert [data["src_port"] for _, data in run.events] == [40000]


def test_syn_answered_by_syn_ack_never_fails() -> None:
    run = Run()
    syn_ack = segment(Direction.INGRESS, SERVER, CLIENT, SYN | ACK, ack=1001, ns=100)
    run.handler.hostcore_packets([syn(), syn_ack])
    run.handler.hostcore_expire(60 * SECOND)
    assert run.events == []


def test_a_peers_syn_is_not_this_hosts_attempt() -> None:
    run = Run()
    arriving = segment(Direction.INGRESS, CLIENT, SERVER, SYN, ack=0)
    run.handler.hostcore_packets([arriving])
    run.handler.hostcore_expire(60 * SECOND)
    assert run.events == []


def test_rst_not_acknowledging_the_syn_is_not_a_refusal() -> None:
    run = Run()
    stray = segment(Direction.INGRESS, SERVER, CLIENT, RST | ACK, seq=0, ack=77)
    run.handler.hostcore_packets([syn(), stray])
    assert run.events == []


def test_pending_table_is_bounded_and_evictions_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(failed, "PENDING_SYNS", 2)
    run = Run()
    syns = [segment(Direction.EGRESS, ("192.0.2.10", 40000 + i), SERVER, SYN) for i in range(3)]
    run.handler.hostcore_packets(syns)
    run.handler.hostcore_expire(60 * SECOND)
    assert [data["src_port"] for _, data in run.events] == [40001, 40002]
    assert run.counts["net_flow_tcp_failed.flow_table_evictions"] == 1


@pytest.mark.parametrize("value", ["0", "-1", "soon", "nan", "inf", "1e-12"])
def test_bad_timeout_is_an_error_naming_the_option(value: str) -> None:
    with pytest.raises(ValueError, match=f"syn_timeout_s must be .* got '{value}'"):
        Run({"syn_timeout_s": value})


def test_default_timeout() -> None:
    assert failed.syn_timeout_ns({}) == int(failed.DEFAULT_SYN_TIMEOUT_S * SECOND)
