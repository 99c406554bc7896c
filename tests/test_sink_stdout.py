"""The stdout sink behind its queue: every line in order through a real pipe, a reader
that goes away closes it with what it held counted, and a device that refuses writes
loses only the lines it refused, counted."""

from __future__ import annotations

import io
import os
import threading
import time

from hostcore.log import FailureLog
from hostcore.sinks.base import Rendered
from hostcore.sinks.queue import QueuedSink
from hostcore.sinks.stdout import LINES_PER_WRITE, StdoutSink

EVENTS = 3 * LINES_PER_WRITE + 5  # whole writes and a part


def _line(n: int) -> Rendered:
    return b"", f'{{"n":{n}}}\n', {"n": n}, False


def _no_marker(data: object) -> Rendered:
    raise AssertionError(f"no loss was told, yet a marker was built: {data}")


def _queued(stream: io.TextIOWrapper) -> QueuedSink:
    return QueuedSink("stdout", StdoutSink(stream), "json", 65536, _no_marker, FailureLog())


def test_every_line_reaches_a_pipe_in_order() -> None:
    read_end, write_end = os.pipe()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(_read_all(read_end)))
    reader.start()
    with open(write_end, "w") as stream:  # the sink leaves it open, as it does stdout
        queued = _queued(stream)
        for start in range(0, EVENTS, 100):  # batches as the dispatch thread hands them over
            queued.put([_line(n) for n in range(start, min(start + 100, EVENTS))])
        queued.stop()
        queued.join(time.monotonic() + 30)
    reader.join(30)
    assert got[0].decode().splitlines() == [f'{{"n":{n}}}' for n in range(EVENTS)]
    assert queued.counters() == {}


def test_a_reader_that_went_away_closes_the_sink_and_what_it_held_is_undelivered() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with open(write_end, "w") as stream:
        queued = _queued(stream)
        queued.put([_line(n) for n in range(EVENTS)])
        queued.stop()
        queued.join(time.monotonic() + 30)
        assert queued.closed_reason == "the reader of standard output went away"
        assert queued.counters() == {"sink_undelivered.stdout": EVENTS}
        stream.write("after\n")  # the descriptor now points at /dev/null: no second failure
        stream.flush()


def test_a_device_that_refuses_writes_loses_the_lines_it_refused_and_counts_them() -> None:
    with open("/dev/full", "w") as stream:  # every write fails with ENOSPC
        queued = _queued(stream)
        queued.put([_line(n) for n in range(EVENTS)])
        queued.stop()
        queued.join(time.monotonic() + 30)
        assert not queued.closed_reason
        assert queued.counters() == {"sink_errors.stdout": EVENTS}


def _read_all(fd: int) -> bytes:
    with open(fd, "rb") as pipe:
        return pipe.read()
