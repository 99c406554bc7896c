"""Registers the ``prometheus`` monitor: ``--monitor prometheus[:listen=HOST:PORT]``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import structlog

from hostcore import (
    IsLoss,
    Monitor,
    MonitorSpec,
    OptionError,
    ReadCounters,
    hookimpl,
    parse_address,
)
from hostcore_prometheus.exporter import Endpoint

DEFAULT_LISTEN = "127.0.0.1:9464"

log = structlog.get_logger()


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[IPV6]:PORT``; OptionError naming what is wrong."""
    try:
        _, (host, port) = parse_address(text, unix=False)
    except OptionError:
        raise OptionError(
            f"listen must be HOST:PORT or [IPv6]:PORT, e.g. {DEFAULT_LISTEN}, got {text!r}"
        ) from None
    return host, port


def open_monitor(options: Mapping[str, str], read: ReadCounters, is_loss: IsLoss) -> Monitor:
    host, port = parse_listen(options.get("listen", DEFAULT_LISTEN))
    endpoint = Endpoint(host, port, read, is_loss)
    log.info("prometheus endpoint listening", url=f"http://{host}:{endpoint.port}/metrics")
    return endpoint


@hookimpl
def hostcore_register_monitors(register: Callable[[MonitorSpec], None]) -> None:
    register(
        MonitorSpec(
            name="prometheus",
            open=open_monitor,
            check=lambda options: parse_listen(options.get("listen", DEFAULT_LISTEN)),
            options={"listen": f"address to serve /metrics on (default {DEFAULT_LISTEN})"},
            description="live counters as a Prometheus text endpoint",
        )
    )
