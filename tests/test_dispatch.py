"""Packets reach event handlers through pluggy hooks: one call per handler per batch,
only the kinds each event declared, and a handler's failure is its own."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from packets import ACK, FIN, SYN, ipv4, tcp

from hostcore import EventContext, EventSpec, Packet, PacketKind, hookimpl
from hostcore.decoder import Decoder
from hostcore.log import FailureLog
from hostcore.packet import Direction
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.dispatch import Dispatch
from hostcore.plugins import PluginError

decode = Decoder().decode  # one decoder, its address cache, per test module


def segment(flags: int, port: int) -> Packet:
    raw = ipv4("192.0.2.10", "203.0.113.5", tcp(40000, port, flags))
    return decode(raw, port, Direction.EGRESS)


class Recorder:
    """Records each batch it is handed; raises on a batch that holds port 13."""

    def __init__(self, context: EventContext | None = None) -> None:
        self.batches: list[list[int]] = []

    @hookimpl
    def hostcore_packets(self, packets: Sequence[Packet]) -> None:
        self.batches.append([packet.dst_port for packet in packets])
        if any(packet.dst_port == 13 for packet in packets):
            raise RuntimeError("unlucky")


def spec(name: str, event_id: int, needs: PacketKind) -> EventSpec:
    return EventSpec(name, event_id, (), (), "", needs, Recorder, plugin="tests")


def test_each_handler_gets_its_kinds_once_per_batch_and_fails_alone() -> None:
    syn_acks, fins = Recorder(), Recorder()
    accounting = Accounting(0)
    dispatch = Dispatch(
        [
            (spec("syn_acks", 1001, PacketKind.TCP_SYN_ACK), syn_acks),
            (spec("fins", 1002, PacketKind.TCP_FIN_RST), fins),
        ],
        None,
        accounting,
        FailureLog(),
    )
    dispatch.feed([segment(SYN | ACK, 1), segment(FIN | ACK, 2), segment(SYN | ACK, 3)])
    dispatch.feed([segment(FIN | ACK, 13), segment(SYN | ACK, 4)])  # fins raises on this one
    assert syn_acks.batches == [[1, 3], [4]]
    assert fins.batches == [[2], [13]]
    assert accounting.counters["plugin_errors.fins"] == 1  # the one packet it lost
    assert "plugin_errors.syn_acks" not in accounting.counters


class Misspelt:
    @hookimpl
    def hostcore_packet(self, packets: Sequence[Packet]) -> None:
        pass


class Deaf:
    def handle(self, packets: Sequence[Packet]) -> None:  # an unmarked method is no hook
        pass


@pytest.mark.parametrize(
    ("handler", "needle"),
    [
        (Misspelt(), "its handler has invalid hooks: unknown hook 'hostcore_packet'"),
        (Deaf(), "needs packets (<PacketKind.TCP_SYN: 4>) but its handler implements no"),
    ],
    ids=["unknown-hook", "no-packets-hook"],
)
def test_a_handler_without_the_hooks_it_needs_is_an_error_naming_its_event(
    handler: object, needle: str
) -> None:
    with pytest.raises(PluginError) as raised:
        Dispatch(
            [(spec("mine", 1003, PacketKind.TCP_SYN), handler)], None, Accounting(0), FailureLog()
        )
    assert str(raised.value).startswith("event 'mine' from plugin 'tests'")
    assert needle in str(raised.value)
