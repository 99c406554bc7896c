"""The run's counters in Prometheus' text format, served over HTTP by prometheus-client.

Every counter is one sample of ``hostcore_counter_total{name="<counter>"}``; those that
count lost events (the ones ``lost_events`` reports) are also samples of
``hostcore_lost_total{name="<counter>"}``, so ``sum(hostcore_lost_total)`` is all loss.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from hostcore import IsLoss, ReadCounters


class CountersCollector(Collector):
    """Reads a snapshot of the run's counters at each scrape."""

    def __init__(self, read: ReadCounters, is_loss: IsLoss) -> None:
        self._read = read
        self._is_loss = is_loss

    def collect(self) -> Iterator[CounterMetricFamily]:
        counters = self._read()
        every = CounterMetricFamily(
            "hostcore_counter", "Every counter of the hostcore run, by name", labels=["name"]
        )
        lost = CounterMetricFamily(
            "hostcore_lost", "Events lost, or possibly lost, by counter name", labels=["name"]
        )
        for name, value in sorted(counters.items()):
            every.add_metric([name], value)
            if self._is_loss(name):
                lost.add_metric([name], value)
        yield every
        yield lost


class Endpoint:
    """An HTTP server answering scrapes on ``host:port`` from its own thread."""

    def __init__(self, host: str, port: int, read: ReadCounters, is_loss: IsLoss) -> None:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(CountersCollector(read, is_loss))
        self._server, self._thread = start_http_server(port, host, registry)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
