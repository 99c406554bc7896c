"""Registers the ``nats`` sink and the ``nats://`` source of ``hostcore tail``."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from hostcore import OptionError, Sink, SinkSpec, SourceSpec, hookimpl
from hostcore_nats import tail
from hostcore_nats.client import Connection
from hostcore_nats.jetstream import JetStreamError, ensure_stream
from hostcore_nats.server import OPTIONS, Server, server_from, shown
from hostcore_nats.sink import NatsSink


def settings(options: Mapping[str, str]) -> Server:
    """The server, how to reach it and log in, and the stream (files read, nothing opened)."""
    url = options.get("url")
    if not url:
        raise OptionError("needs url=nats://HOST:PORT, e.g. --sink nats:url=nats://127.0.0.1:4222")
    return server_from(url, {k: v for k, v in options.items() if k != "url"})


def open_sink(options: Mapping[str, str]) -> Sink:
    server = settings(options)
    url = options["url"]
    connection: Connection | None = None
    try:
        connection = Connection(server, "hostcore")
        ensure_stream(connection, server.stream)
    except (OSError, JetStreamError) as error:
        if connection is not None:
            connection.close()
        raise OptionError(
            f"cannot use JetStream at {shown(url)} (stream {server.stream!r}): {error}"
        ) from error
    return NatsSink(server, connection)


@hookimpl
def hostcore_register_sinks(register: Callable[[SinkSpec], None]) -> None:
    register(
        SinkSpec(
            name="nats",
            open=open_sink,
            check=settings,
            options={
                "url": "the NATS server, nats://HOST:PORT (tls://HOST:PORT: TLS)",
                **OPTIONS,
            },
            description="NATS JetStream: hostcore.<host>.<event>, acked, de-duplicated, TLS",
        )
    )


@hookimpl
def hostcore_register_sources(register: Callable[[SourceSpec], None]) -> None:
    register(
        SourceSpec(
            name="nats",
            tail=tail.tail,
            description="a JetStream stream the nats sink fills "
            "(nats://HOST:PORT[?stream=NAME&OPTION=VALUE...], the nats sink's options)",
        )
    )
