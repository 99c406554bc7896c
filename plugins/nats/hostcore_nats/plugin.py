"""Registers the ``nats`` sink and the ``nats://`` source of ``hostcore tail``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hostcore import OptionError, Sink, SinkSpec, SourceSpec, hookimpl
from hostcore_nats import tail
from hostcore_nats.bus import Bus
from hostcore_nats.sink import NatsSink
from hostcore_nats.subjects import DEFAULT_STREAM, shown


def settings(options: Mapping[str, str]) -> tuple[str, str]:
    """The server's URL and the stream's name."""
    url = options.get("url")
    if not url:
        raise OptionError("needs url=nats://HOST:PORT, e.g. --sink nats:url=nats://127.0.0.1:4222")
    return url, options.get("stream", DEFAULT_STREAM)


def open_sink(options: Mapping[str, str]) -> Sink:
    url, stream = settings(options)
    try:
        bus = Bus(url, "hostcore")
        bus.ensure_stream(stream)
    except Exception as error:
        raise OptionError(
            f"cannot use JetStream at {shown(url)} (stream {stream!r}): "
            f"{type(error).__name__}: {error}"
        ) from error
    return NatsSink(bus)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="nats",
            open=open_sink,
            check=settings,
            options={
                "url": "the NATS server, nats://HOST:PORT",
                "stream": f"JetStream stream, created if missing (default {DEFAULT_STREAM})",
            },
            description="NATS JetStream: hostcore.<host>.<event>, acked, de-duplicated",
        )
    )


@hookimpl
def hostcore_register_sources(register: Callable[[SourceSpec], None]) -> None:
    register(
        SourceSpec(
            name="nats",
            tail=tail.tail,
            description="a JetStream stream the nats sink fills (nats://HOST:PORT[?stream=NAME])",
        )
    )
