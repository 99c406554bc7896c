"""The prometheus monitor (plugins/prometheus): counters in the text format, over real HTTP."""

from __future__ import annotations

import pytest
from hostcore_prometheus.exporter import Endpoint
from hostcore_prometheus.plugin import parse_listen
from prometheus_scrape import scrape

from hostcore.pipeline.accounting import Accounting


def test_every_counter_is_served_and_losses_apart() -> None:
    accounting = Accounting(0)
    endpoint = Endpoint("127.0.0.1", 0, accounting.snapshot, accounting.is_loss)
    try:
        url = f"http://127.0.0.1:{endpoint.port}/metrics"
        accounting.count("events.net_flow_tcp_begin", 7)
        accounting.count("kernel_reserve_failures", 3)
        assert scrape(url) == {
            ("hostcore_counter", "events.net_flow_tcp_begin"): 7,
            ("hostcore_counter", "kernel_reserve_failures"): 3,
            ("hostcore_lost", "kernel_reserve_failures"): 3,
        }
        accounting.count("sink_errors.file")  # live: the next scrape sees it
        assert scrape(url)[("hostcore_lost", "sink_errors.file")] == 1
    finally:
        endpoint.close()


@pytest.mark.parametrize(
    ("text", "expected"),
    [("127.0.0.1:9464", ("127.0.0.1", 9464)), ("[::1]:80", ("::1", 80))],
)
def test_listen_option(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["9464", ":9464", "host:", "host:http", "host:70000"])
def test_bad_listen_option(text: str) -> None:
    with pytest.raises(ValueError, match="listen must be HOST:PORT"):
        parse_listen(text)
