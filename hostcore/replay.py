"""``hostcore replay``: capture files through the live path's decoder, plugins and sinks."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import structlog

from hostcore.capture.connections import FORGOTTEN, Connections
from hostcore.capture.direction import Directions, LocalNets
from hostcore.capture.files import CaptureError, CaptureFile, Frame
from hostcore.capture.links import LinkError, ip_offset
from hostcore.capture.progress import Progress
from hostcore.config import Config
from hostcore.decoder import DNS_PORT, IPPROTO_TCP, IPPROTO_UDP, DecodeError, Decoder
from hostcore.gc_tuning import streaming_collection
from hostcore.packet import Direction, Packet, PacketKind, kinds_wanted, tcp_kind
from hostcore.pipeline.accounting import Accounting
from hostcore.pipeline.pipeline import Pipeline
from hostcore.plan import RunError
from hostcore.plugins import Plugins
from hostcore.run import checked_plan, pipeline_of, start_sinks

BATCH = 4096
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Frames that carry nothing the events could want: skipped, not lost. (A fragment after
# the first holds no transport header; the loss, if any, is counted on the first.)
NOT_LOST = frozenset({"not_ip", "not_tcp_or_udp", "ip_fragment", "not_wanted"})

# Packet's fields in order, without NamedTuple's generated __new__.
_packet = tuple.__new__

log = structlog.get_logger()


def check_files(paths: Sequence[Path]) -> None:
    """Open each file before anything runs: a typo stops the run, not its second half."""
    for path in paths:
        try:
            CaptureFile(path).close()
        except OSError as error:
            raise RunError(f"cannot read {path}: {error.strerror}") from error
        except CaptureError as error:
            raise RunError(str(error)) from error


def replay(config: Config, plugins: Plugins, paths: Sequence[Path], local: LocalNets) -> int:
    """Replay ``paths`` in order through the enabled events into the sinks; returns the status.

    SIGINT or SIGTERM stops it after handing on what was read: status 130.
    """
    check_files(paths)
    the_plan, sizes = checked_plan(config, plugins, monitors={})  # a replay opens none
    if config.scope:
        log.warning("scope filters ignored: a capture file has no process context")
    accounting = Accounting(time.time_ns())
    # A file can wait for a slow sink, so none drops: the replay goes at the sinks' pace.
    pipeline = pipeline_of(the_plan, config, accounting, sizes, sinks_wait=True)
    start_sinks(pipeline, plugins, config)
    stop = threading.Event()  # checked between frames: a signal never cuts an event in two
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in STOP_SIGNALS}
    replayer = _Replayer(pipeline, accounting, local, the_plan.needs, stop)
    try:
        with streaming_collection():
            for path in paths:
                if stop.is_set() or not pipeline.has_sinks:  # no sinks: `| head` has exited
                    break
                replayer.file(path)
            replayer.finish()
    finally:
        pipeline.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    status = 0
    if stop.is_set():
        log.warning("interrupted: what was read until then has been replayed")
        status = 130
    log.info("totals", **accounting.totals())
    print(summary(accounting.counters), file=sys.stderr)
    return status


class _Replayer:
    """Reads capture files into one pipeline; time, for DNS TTLs and losses, is capture time.

    Packets go on as the probe would hand them up for ``needs``: what its kernel
    side adds (connect() times, ends held until the close with their totals) comes
    from the capture's other packets, which are decoded for that and no more.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        accounting: Accounting,
        local: LocalNets,
        needs: PacketKind,
        stop: threading.Event,
    ) -> None:
        self._stop = stop
        self._pipeline = pipeline
        self._accounting = accounting
        self._directions = Directions(local)
        self._wanted = kinds_wanted(needs)  # what goes on to the pipeline
        self._connections: Connections | None = None
        self._decoded = self._wanted  # what is decoded
        if needs & (PacketKind.TCP_SYN_ACK | PacketKind.TCP_TOTALS):
            totals = bool(needs & PacketKind.TCP_TOTALS)
            self._connections = Connections(totals, accounting.count)
            # A SYN's time is connect()'s; totals count every segment.
            decoded = kinds_wanted(needs | PacketKind.TCP_SYN)
            self._decoded = (*decoded, PacketKind.NONE) if totals else decoded
        self._progress = sys.stderr.isatty()
        self._batch: list[Packet] = []
        self._decoder = Decoder()
        self._last_ns: int | None = None  # the latest capture time seen, across files

    def file(self, path: Path) -> None:
        count = self._accounting.count
        progress = Progress(sys.stderr) if self._progress else None
        with CaptureFile(path) as capture:
            count("replay.files")
            try:
                self._read(capture, progress)
            except CaptureError as error:
                count(f"capture_errors.{error.reason}")
                log.warning("capture file breaks off; the rest is unread", error=str(error))
            finally:
                if progress:
                    progress.done()
                self._pipeline.feed(self._batch)
                self._batch = []
                for reason, n in capture.bad_blocks.items():
                    count(f"capture_errors.{reason}", n)
                now_ns = time.time_ns() if self._last_ns is None else self._last_ns
                self._pipeline.expire(now_ns)  # timeouts run in capture time too
                self._pipeline.report_losses(now_ns)

    def _read(self, capture: CaptureFile, progress: Progress | None) -> None:
        records = decoded = 0
        try:
            for chunk in capture.chunks(self._decoded):
                if self._stop.is_set():
                    return
                if not records:  # this file's losses are reported over its own capture time
                    self._start(capture.path, chunk.first_ns)
                records += chunk.records
                self._last_ns = chunk.last_ns
                if chunk.skimmed:
                    self._accounting.count("replay.skipped.not_wanted", chunk.skimmed)
                decoded += self._frames(chunk.frames)
                if not self._pipeline.has_sinks:
                    return
                if progress:
                    progress.update(capture.path.name, records, capture.position, capture.size)
        finally:
            self._accounting.count("replay.frames", records)
            self._accounting.count("replay.decoded", decoded)

    def _start(self, path: Path, first_ns: int) -> None:
        self._accounting.start_interval(first_ns)
        if self._last_ns is not None and first_ns < self._last_ns:
            log.warning(
                "capture files out of time order: give them oldest first, "
                "DNS TTLs and duplicate windows run in capture time",
                file=str(path),
            )

    def finish(self) -> None:
        """Hand on the ends still held: their connections' close is not in the files."""
        if self._connections is not None:
            self._pipeline.feed(self._connections.held_ends())

    def _frames(self, frames: list[Frame]) -> int:
        """Decode ``frames`` into the batch, feeding it when full; returns how many decoded."""
        wanted, decoded_kinds, batch = self._wanted, self._decoded, self._batch
        connections = self._connections
        released = connections.released if connections is not None else []
        decoded = 0
        for frame in frames:
            packet, recorded = self._decode(frame)
            if packet is None:
                continue
            decoded += 1
            if packet.kind not in decoded_kinds:  # what the probe's kernel filter would drop
                continue
            if not recorded:
                direction = self._directions.of(packet)
                if direction is not packet.direction:  # _replace would cost twice as much
                    packet = _packet(Packet, (packet[0], direction, *packet[2:]))
            if connections is not None:
                handed = connections.see(packet)
                if released:
                    batch.extend(released)
                    released.clear()
                if handed is None or handed.kind not in wanted:
                    continue
                packet = handed
            batch.append(packet)
            if len(batch) >= BATCH:
                self._pipeline.feed(batch)
                batch.clear()
        return decoded

    def _decode(self, frame: Frame) -> tuple[Packet | None, bool]:
        """The frame's packet, and whether the file or the link header recorded its direction."""
        try:
            offset, direction = frame.ip_offset, None
            if offset is None:  # else the reader's skim found the IP header and kept the frame
                offset, direction = ip_offset(frame.link_type, frame.data)
                if _plainly_unwanted(frame.data, offset, self._decoded):
                    self._accounting.count("replay.skipped.not_wanted")
                    return None, False
            if frame.direction is not None:  # the file's record wins over the link header's
                direction = frame.direction
            packet = self._decoder.decode(
                frame.data[offset:],
                frame.timestamp_ns,
                Direction.INGRESS if direction is None else direction,  # None: settled later
            )
        except (LinkError, DecodeError) as error:
            reason = error.reason
            if reason.startswith("truncated_") and len(frame.data) < frame.wire_length:
                reason = "snaplen"  # the capture kept less than the packet had
            self._accounting.count(
                f"replay.skipped.{reason}" if reason in NOT_LOST else f"decode_errors.{reason}"
            )
            return None, False
        return packet, direction is not None


def _plainly_unwanted(data: bytes, offset: int, wanted: tuple[PacketKind, ...]) -> bool:
    """What the probe's kernel filter would drop, told from a plain IP header without
    decoding: TCP of a kind no event wants, or UDP, unless from port 53. Anything less
    plain (options past the header, fragments, extension headers, short packets) is
    left to the decoder, which also counts what is malformed."""
    if len(data) < offset + 40:
        return False
    version = data[offset] >> 4
    if version == 4 and not (data[offset + 6] << 8 | data[offset + 7]) & 0x3FFF:
        protocol, l4 = data[offset + 9], offset + (data[offset] & 0x0F) * 4
    elif version == 6:
        protocol, l4 = data[offset + 6], offset + 40
    else:
        return False
    if len(data) < l4 + 14 or (data[l4] << 8 | data[l4 + 1]) == DNS_PORT:
        return False
    if protocol == IPPROTO_TCP:
        return tcp_kind(data[l4 + 13]) not in wanted
    return protocol == IPPROTO_UDP


def summary(counters: Mapping[str, int]) -> str:
    """Totals at the end of a replay, one line each."""

    def by_prefix(prefix: str) -> str:
        items = [(k[len(prefix) :], v) for k, v in sorted(counters.items()) if k.startswith(prefix)]
        total = sum(v for _, v in items)
        details = ", ".join(f"{k} {v:,}" for k, v in items)
        return f"{total:,}" + (f" ({details})" if details else "")

    return "\n".join(
        [
            f"replayed {counters['replay.files']} file(s): "
            f"{counters['replay.frames']:,} packets read, {counters['replay.decoded']:,} decoded",
            f"  skipped: {by_prefix('replay.skipped.')}",
            f"  undecodable: {by_prefix('decode_errors.')}",
            f"  capture errors: {by_prefix('capture_errors.')}",
            f"  not delivered by sinks: {by_prefix('sink_')}",
            f"  events: {by_prefix('events.')}",
            f"  filtered out: {by_prefix('events_filtered.')}",
            f"  connections forgotten (their ends without totals): {counters.get(FORGOTTEN, 0):,}",
        ]
    )
