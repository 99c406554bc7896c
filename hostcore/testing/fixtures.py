"""pytest fixtures for sink authors (registered through the ``pytest11`` entry point).

- ``sink_host``: a factory, ``sink_host({"NAME": {option: value}})``, for a
  :class:`~hostcore.testing.SinkHost` running those sinks; closed after the test.
- ``msgpack_collector``: a :class:`~hostcore.testing.Collector` listening on a Unix
  socket in the test's temporary directory, recording what a stream sink wrote.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from hostcore.testing.collector import Collector
from hostcore.testing.host import SinkHost


@pytest.fixture
def sink_host() -> Iterator[Callable[..., SinkHost]]:
    """Make a host running the named sinks (``SinkHost`` arguments); each is closed after."""
    hosts: list[SinkHost] = []

    def make(sinks: Mapping[str, Mapping[str, str]], **kwargs: object) -> SinkHost:
        host = SinkHost(sinks, **kwargs)  # type: ignore[arg-type]
        hosts.append(host)
        return host

    yield make
    for host in hosts:
        host.close()


@pytest.fixture
def msgpack_collector(tmp_path: Path) -> Iterator[Collector]:
    """A running msgpack collector on a Unix socket; ``.address`` is ``unix:PATH``."""
    with Collector(f"unix:{tmp_path / 'collector.sock'}", tmp_path / "collected.msgpack") as c:
        yield c
