"""A NATS connection with JetStream, driven from synchronous code through its own loop thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

import nats
import structlog
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError

from hostcore_nats.subjects import DUPLICATE_WINDOW_S, PREFIX

T = TypeVar("T")
CONNECT_TIMEOUT_S = 5.0

log = structlog.get_logger()


class Bus:
    """Connected at creation (a server that cannot be reached is an error then); after
    that, the client reconnects by itself, forever, while its caller retries."""

    def __init__(self, url: str, name: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._closing = False
        self._thread = threading.Thread(target=self._loop.run_forever, name=name, daemon=True)
        self._thread.start()
        # Reconnects are attempted forever, and the client counts its first connection
        # among them: only a deadline makes an unreachable server an error at start.
        connect = nats.connect(
            url,
            name=name,
            connect_timeout=CONNECT_TIMEOUT_S,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            allow_reconnect=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        try:
            self.client = self.run(asyncio.wait_for(connect, CONNECT_TIMEOUT_S))
        except TimeoutError as error:
            self._loop.call_soon_threadsafe(self._loop.stop)
            raise ConnectionError(f"no connection within {CONNECT_TIMEOUT_S:g} s") from error
        self.jetstream: JetStreamContext = self.client.jetstream()

    # The client's own errors arrive here (its default logs each with a traceback); the
    # publisher retries, so a line per connection change says enough.
    async def _on_error(self, error: Exception) -> None:
        log.debug("nats client error", error=repr(error))

    async def _on_disconnected(self) -> None:
        if not self._closing:
            log.warning("nats disconnected, reconnecting", name=self._thread.name)

    async def _on_reconnected(self) -> None:
        log.info("nats reconnected", name=self._thread.name)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float | None = None) -> T:
        """Run ``coroutine`` on the bus's loop and wait for its result."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        try:
            return future.result(timeout_s)
        except BaseException:  # Ctrl-C too: the coroutine's own clean-up runs before close
            future.cancel()
            raise

    def ensure_stream(self, stream: str) -> None:
        """Create the stream of ``hostcore.>`` on file storage unless it exists."""
        try:
            self.run(self.jetstream.stream_info(stream))
        except NotFoundError:
            self.run(
                self.jetstream.add_stream(
                    name=stream,
                    subjects=[f"{PREFIX}.>"],
                    storage="file",
                    duplicate_window=DUPLICATE_WINDOW_S,
                )
            )

    def close(self) -> None:
        self._closing = True
        try:
            self.run(self.client.drain(), timeout_s=CONNECT_TIMEOUT_S)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(CONNECT_TIMEOUT_S)
