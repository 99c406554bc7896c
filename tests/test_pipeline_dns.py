"""Dispatch with the DNS store: answers before the packets that follow them, names to plugins."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from dns_messages import answer
from hostcore_net_flow import begin
from list_sink import ListSink
from packets import ACK, SYN, ipv4, tcp, udp

from hostcore import hookimpl
from hostcore.decoder import Decoder
from hostcore.events import EventContext, EventSpec
from hostcore.packet import Direction, Packet, PacketKind
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.pipeline import Pipeline, PipelineOptions

decode = Decoder().decode  # one decoder, its address cache, per test module


def _syn_ack(client_port: int, server: str = "127.0.2.2") -> Packet:
    """At ``client_port`` ns: packets in the order of their ports."""
    raw = ipv4(server, "127.0.0.1", tcp(80, client_port, SYN | ACK, ack=client_port))
    return decode(raw, client_port, Direction.INGRESS, 5)


def _answer(name: str, address: str) -> Packet:
    message = answer(name + ".", (name + ".", 60, "A", address))
    raw = ipv4("127.0.0.53", "127.0.0.1", udp(53, 999, message), proto=17)
    return decode(raw, 1000, Direction.INGRESS, 5)


def _run(
    specs: Sequence[EventSpec], batch: list[Packet], accounting: Accounting | None = None
) -> list[Mapping[str, Any]]:
    sink = ListSink()
    options = PipelineOptions(host="host")
    pipeline = Pipeline(specs, [], accounting or Accounting(0), options)
    pipeline.start({"list": sink})
    pipeline.feed(batch)
    pipeline.close()  # the sink's thread has written everything once it returns
    return sink.events


def test_an_answer_names_only_the_connections_after_it_in_one_batch() -> None:
    batch = [_syn_ack(1001), _answer("shop.test", "127.0.2.2"), _syn_ack(1002)]
    events = _run([begin.SPEC], batch)
    assert [(e["data"]["src_port"], e["data"]["dst_dns"]) for e in events] == [
        (1001, []),
        (1002, ["shop.test"]),
    ]


class _Peek:
    """An event that does not declare uses_dns, but asks the store anyway."""

    def __init__(self, context: EventContext) -> None:
        self._names = context.dns.names
        self._emit = context.emit

    @hookimpl
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        for packet in packets:
            self._emit(packet.timestamp_ns, {"names": self._names(packet.src, 5, 10)})


PEEK = EventSpec("peek", 9999, (), (), "net_packet_flow_base", PacketKind.TCP_SYN_ACK, _Peek)


def test_without_an_event_that_uses_dns_no_answer_is_parsed() -> None:
    accounting = Accounting(0)
    batch = [_answer("shop.test", "127.0.2.2"), _syn_ack(1001)]
    assert [e["data"] for e in _run([PEEK], batch, accounting)] == [{"names": []}]
    assert not [name for name in accounting.counters if name.startswith("dns.")]


def test_every_plugin_reads_the_same_store() -> None:
    batch = [_answer("shop.test", "127.0.2.2"), _syn_ack(1001)]
    events = _run([begin.SPEC, PEEK], batch)
    assert [e["data"].get("names", e["data"].get("dst_dns")) for e in events] == [
        ["shop.test"],
        ["shop.test"],
    ]


class _Calls:
    """Counts its hook calls and the packets in each; uses DNS names like begin."""

    batches: ClassVar[list[int]] = []

    def __init__(self, context: EventContext) -> None:
        self._names = context.dns.names

    @hookimpl
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        _Calls.batches.append(len(packets))


CALLS = EventSpec(
    "calls", 9998, (), (), "net_packet_flow_base", PacketKind.TCP_SYN_ACK, _Calls, uses_dns=True
)


def test_answers_inside_a_batch_do_not_cut_it_into_more_hook_calls() -> None:
    _Calls.batches = []
    batch = [_syn_ack(1001), _answer("shop.test", "127.0.2.2"), _syn_ack(1002)] * 3
    events = _run([begin.SPEC, CALLS], batch)
    assert _Calls.batches == [6]  # one call, every SYN+ACK of the batch
    assert [e["data"]["dst_dns"] for e in events] == [[], ["shop.test"]]  # one per identity
