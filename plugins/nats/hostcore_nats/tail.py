"""``hostcore tail nats://HOST:PORT``: the stream from its start, or a given point, as events.

An ordered push consumer (no acks, nothing left on the server once it goes) reads
the stream in order, filtered on the server by subject when the query names one host
or one event, and by the query otherwise.
"""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import msgpack
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from hostcore import Output, SourceError, TailQuery
from hostcore_nats.bus import Bus
from hostcore_nats.subjects import DEFAULT_STREAM, filter_subject, shown


def stream_of(url: str) -> tuple[str, str]:
    """The server URL and the stream (``?stream=NAME``, default HOSTCORE)."""
    parts = urlsplit(url)
    stream = parse_qs(parts.query).get("stream", [DEFAULT_STREAM])[0]
    return parts._replace(query="").geturl(), stream


def consumer_config(query: TailQuery) -> ConsumerConfig:
    if query.start_seq is not None:
        return ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=max(1, query.start_seq)
        )
    if query.start_time_ns is not None:
        start = datetime.fromtimestamp(query.start_time_ns / 10**9, UTC)
        return ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME, opt_start_time=start)
    return ConsumerConfig(deliver_policy=DeliverPolicy.ALL)


def tail(url: str, query: TailQuery, output: Output) -> None:
    server, stream = stream_of(url)
    try:
        bus = Bus(server, "hostcore-tail")
    except Exception as error:
        raise SourceError(
            f"cannot reach NATS at {shown(server)}: {type(error).__name__}: {error}"
        ) from error
    try:
        bus.run(_read(bus, stream, query, output))
    finally:
        bus.close()


async def _read(bus: Bus, stream: str, query: TailQuery, output: Output) -> None:
    try:
        await bus.jetstream.stream_info(stream)
    except NotFoundError as error:
        raise SourceError(
            f"no stream {stream!r} on the server: has a nats sink run yet?"
        ) from error
    subscription = await bus.jetstream.subscribe(
        filter_subject(query.hosts, query.events),
        stream=stream,
        ordered_consumer=True,
        config=consumer_config(query),
    )
    try:
        if not query.follow and await _nothing_to_deliver(subscription):
            return
        async for message in subscription.messages:
            event = msgpack.unpackb(message.data, raw=False)
            if query.wants(event):
                output(event)
            if not query.follow and message.metadata.num_pending == 0:
                return
    finally:
        await subscription.unsubscribe()


async def _nothing_to_deliver(subscription: JetStreamContext.PushSubscription) -> bool:
    """True if the new consumer has nothing to deliver. Pushing starts at its creation,
    so what it already sent counts too: pending alone may be 0 with messages on the way."""
    info = await subscription.consumer_info()
    return info.num_pending == 0 and not (info.delivered and info.delivered.consumer_seq)
