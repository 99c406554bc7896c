"""``hostcore replay``: capture files through the live path's decoder, plugins and sinks."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import structlog

from hostcore.accounting import Accounting
from hostcore.capture.direction import LocalNets
from hostcore.capture.files import CaptureError, CaptureFile, Frame
from hostcore.capture.links import LinkError, ip_offset
from hostcore.capture.progress import Progress
from hostcore.config import Config
from hostcore.decoder import DecodeError, decode
from hostcore.packet import Direction, Packet, PacketKind, kinds_wanted
from hostcore.pipeline import Pipeline
from hostcore.plugins import Plugins
from hostcore.run import RunError, plan, start_pipeline

BATCH = 4096
PROGRESS_EVERY = 4096  # frames between progress checks
# Frames that carry nothing the events could want: skipped, not lost.
NOT_LOST = frozenset({"not_ip", "not_tcp_or_udp"})

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
    """Replay ``paths`` in order through the enabled events into the sinks; returns the status."""
    check_files(paths)
    the_plan = plan(config, plugins)
    if config.scope:
        log.warning("scope filters ignored: a capture file has no process context")
    accounting = Accounting(0)
    pipeline = start_pipeline(the_plan, plugins.sinks(), config, accounting)
    replayer = _Replayer(pipeline, accounting, local, kinds_wanted(the_plan.needs))
    try:
        for path in paths:
            if not pipeline.has_sinks:  # e.g. stdout piped to `head`, which has exited
                break
            replayer.file(path)
    finally:
        pipeline.close()
    log.info("totals", **accounting.totals())
    print(summary(accounting.counters, len(paths)), file=sys.stderr)
    return 0


class _Replayer:
    def __init__(
        self,
        pipeline: Pipeline,
        accounting: Accounting,
        local: LocalNets,
        wanted: tuple[PacketKind, ...],
    ) -> None:
        self._pipeline = pipeline
        self._accounting = accounting
        self._local = local
        self._wanted = wanted
        self._progress = sys.stderr.isatty()

    def file(self, path: Path) -> None:
        count, wanted = self._accounting.count, self._wanted
        frames = decoded = 0
        last_ns = None
        progress = Progress(sys.stderr) if self._progress else None
        batch: list[Packet] = []
        with CaptureFile(path) as capture:
            try:
                for frame in capture:
                    frames += 1
                    if progress and not frames % PROGRESS_EVERY:
                        progress.update(path.name, frames, capture.position, capture.size)
                    last_ns = frame.timestamp_ns
                    if frames == 1:  # lost_events intervals are in capture time too
                        self._accounting.reported_at_ns = last_ns
                    packet, recorded = self._decode(frame)
                    if packet is None:
                        continue
                    decoded += 1
                    if packet.kind not in wanted:  # what the probe's kernel filter would drop
                        continue
                    if not recorded:
                        direction = self._local.direction(packet.src, packet.dst)
                        if direction is not packet.direction:
                            packet = packet._replace(direction=direction)
                    batch.append(packet)
                    if len(batch) >= BATCH:
                        self._pipeline.feed(batch)
                        batch = []
                        if not self._pipeline.has_sinks:
                            break
            except CaptureError as error:
                count(f"capture_errors.{error.reason}")
                log.warning("capture file breaks off; the rest is unread", error=str(error))
            finally:
                if progress:
                    progress.done()
        self._pipeline.feed(batch)
        count("replay.frames", frames)
        count("replay.decoded", decoded)
        self._pipeline.report_losses(last_ns or 0)

    def _decode(self, frame: Frame) -> tuple[Packet | None, bool]:
        """The frame's packet, and whether the file or the link header recorded its direction."""
        try:
            offset, direction = ip_offset(frame.link_type, frame.data)
            if frame.direction is not None:  # the file's record wins over the link header's
                direction = frame.direction
            packet = decode(
                frame.data[offset:],
                frame.timestamp_ns,
                Direction.INGRESS if direction is None else direction,  # None: settled later
            )
        except (LinkError, DecodeError) as error:
            reason = error.reason
            self._accounting.count(
                f"replay.skipped.{reason}" if reason in NOT_LOST else f"decode_errors.{reason}"
            )
            return None, False
        return packet, direction is not None


def summary(counters: dict[str, int], files: int) -> str:
    """Totals at the end of a replay, one line each."""

    def by_prefix(prefix: str) -> str:
        items = [(k[len(prefix) :], v) for k, v in sorted(counters.items()) if k.startswith(prefix)]
        total = sum(v for _, v in items)
        details = ", ".join(f"{k} {v:,}" for k, v in items)
        return f"{total:,}" + (f" ({details})" if details else "")

    return "\n".join(
        [
            f"replayed {files} file(s): {counters['replay.frames']:,} packets read, "
            f"{counters['replay.decoded']:,} decoded",
            f"  skipped: {by_prefix('replay.skipped.')}",
            f"  undecodable: {by_prefix('decode_errors.')}",
            f"  capture errors: {by_prefix('capture_errors.')}",
            f"  events: {by_prefix('events.')}",
        ]
    )
