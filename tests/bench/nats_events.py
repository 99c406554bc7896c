"""Sustained events/s into NATS JetStream through the nats sink (not a test; README: Sinks).

Starts a nats-server with JetStream on file storage in a temporary directory, runs the
core's sink path (hostcore.testing.SinkHost) with the nats sink, publishes EVENTS
synthetic events as fast as the dispatch thread can, and times until every one is
acked (the run's close). Checks the stream holds them all. Prints one line.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence

import nats

from hostcore.testing import SinkHost, synthetic_events


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def stored(url: str) -> int:
    client = await nats.connect(url)
    try:
        info = await client.jetstream().stream_info("HOSTCORE")
        return int(info.state.messages)
    finally:
        await client.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as store:
        port = free_port()
        command = ["nats-server", "-js", "-sd", store, "-a", "127.0.0.1", "-p", str(port)]
        server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
        try:
            assert server.stderr is not None
            for line in server.stderr:
                if "Server is ready" in line:
                    break
            url = f"nats://127.0.0.1:{port}"
            options = {"url": url, "queue_size": str(args.events)}
            host = SinkHost({"nats": options}, drain_timeout_s=600)
            flows = list(synthetic_events(args.events))
            started = time.perf_counter()
            for data in flows:
                host.emit(data)
            totals = host.close()
            elapsed = time.perf_counter() - started
            held = asyncio.run(stored(url))
        finally:
            server.terminate()
            server.wait()
    losses = {k: v for k, v in totals.items() if k.startswith("sink_")}
    print(
        f"nats sink: {args.events} events acked in {elapsed:.2f} s: "
        f"{args.events / elapsed:,.0f} events/s; stream holds {held}; losses {losses or 'none'}"
    )
    return 0 if held == args.events and not losses else 1


if __name__ == "__main__":
    sys.exit(main())
