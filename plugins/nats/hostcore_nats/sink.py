"""The ``nats`` sink: each event's msgpack to ``hostcore.<host>.<event>`` on a JetStream stream.

Events are published in batches of up to ``BATCH`` without waiting in between, then
every JetStream ack is awaited. A message that is not acked (server down, timeout) is
published again, with its message id, until it is: the stream's de-duplication makes
the re-sent ones that had been stored count once.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from typing import Any

import structlog

from hostcore import event_parts
from hostcore_nats.bus import Bus
from hostcore_nats.subjects import subject

BATCH = 2048  # under the client's 4,000 pending acks; larger batches gained nothing here
ACK_TIMEOUT_S = 5.0
FIRST_BACKOFF_S = 0.1
MAX_BACKOFF_S = 2.0

log = structlog.get_logger()

Message = tuple[str, bytes, str]  # subject, payload, message id


class NatsSink:
    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._run_id = uuid.uuid4().hex  # message ids: unique across runs and hosts
        self._sequence = 0
        self._batch: list[Message] = []
        self._subjects: dict[tuple[str, str], str] = {}
        self.published = 0
        self.duplicates = 0
        self.retried = 0

    @property
    def held(self) -> int:
        """Events taken but not yet acked: the core counts them if the run ends first."""
        return len(self._batch)

    def write(self, packed: bytes, event: Mapping[str, Any]) -> None:
        name, host, _, _ = event_parts(event)
        key = (host, name)
        to = self._subjects.get(key) or self._subjects.setdefault(key, subject(*key))
        self._sequence += 1
        self._batch.append((to, packed, f"{self._run_id}-{self._sequence}"))
        if len(self._batch) >= BATCH:
            self.flush()

    def flush(self) -> None:
        """Publish the batch, retrying what was not acked until everything is."""
        pending = self._batch
        backoff = FIRST_BACKOFF_S
        while pending:
            try:
                pending = self._bus.run(self._publish(pending))
            except Exception as error:  # the client's errors while it reconnects, timeouts
                log.debug("nats publish failed", error=repr(error))
            if pending:
                if backoff == FIRST_BACKOFF_S:
                    log.warning(
                        "nats publish not acked, retrying", sink="nats", unacked=len(pending)
                    )
                self.retried += len(pending)
                time.sleep(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._batch = []

    async def _publish(self, messages: list[Message]) -> list[Message]:
        """Publish all, await every ack; returns the messages that were not acked."""
        jetstream = self._bus.jetstream
        futures: list[asyncio.Future[Any]] = []
        for to, payload, message_id in messages:
            try:
                # No wait_stall: a batch stays under the client's limit of pending acks,
                # and a timed wait would cost a task per message.
                future = await jetstream.publish_async(
                    to, payload, headers={"Nats-Msg-Id": message_id}
                )
            except Exception:
                break  # not sent: it and the rest are retried
            futures.append(future)
        if futures:  # one wait for them all: a wait_for per ack would cost a task each
            _, late = await asyncio.wait(futures, timeout=ACK_TIMEOUT_S)
            for future in late:
                future.cancel()
        failed = messages[len(futures) :]
        for sent, future in zip(messages, futures, strict=False):
            if future.cancelled() or future.exception() is not None:
                failed.append(sent)
            else:
                self.published += 1
                self.duplicates += bool(future.result().duplicate)
        return failed

    def close(self) -> None:
        """After the core's final flush: what it could not publish is counted as held."""
        log.info(
            "nats sink totals",
            sink="nats",
            published=self.published,
            duplicates=self.duplicates,
            retried=self.retried,
        )
        self._bus.close()
