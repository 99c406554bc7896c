"""structlog set-up: logs go to stderr, JSON lines unless stderr is a terminal."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, TextIO, cast

import structlog

from hostcore.redact import redact_event

# How often one source of repeated failures (a plugin, a sink) is logged with its traceback.
ERROR_LOG_INTERVAL_NS = 60 * 10**9


class FailureLog:
    """Logs failures with their traceback, at most once per interval for each source:
    a plugin or sink that fails on every event would otherwise flood the log."""

    def __init__(self) -> None:
        self._logged_at: dict[str, int] = {}

    def exception(self, source: str, message: str, **fields: Any) -> None:
        """Log the exception being handled, unless ``source`` was logged this interval."""
        now = time.monotonic_ns()
        if now - self._logged_at.get(source, -ERROR_LOG_INTERVAL_NS) >= ERROR_LOG_INTERVAL_NS:
            self._logged_at[source] = now
            structlog.get_logger().exception(
                message, **fields, next_report_in_s=ERROR_LOG_INTERVAL_NS // 10**9
            )


def configure(level: str = "info") -> None:
    render: Any = (
        structlog.dev.ConsoleRenderer()
        if sys.stderr.isatty()
        else structlog.processors.JSONRenderer()
    )
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            # Tracebacks as text first, so that credentials in them are masked too.
            structlog.processors.format_exc_info,
            redact_event,
            render,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        # Not cached: a configure() later in the process (one per cli.main call) takes
        # effect in loggers already used; logging is never per packet, so it costs nothing.
        cache_logger_on_first_use=False,
    )


class _Stderr:
    """Whatever ``sys.stderr`` is when a line is written, not when logging was set up."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()
