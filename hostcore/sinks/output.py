"""Output files: created private (0600 unless configured), reopened after SIGHUP.

``hostcore run`` turns SIGHUP (as logrotate's ``postrotate`` sends it) into a reopen
request; each sink that writes a file holds a ``ReopenWatch`` and, at its next flush,
closes its file and opens the path anew, so the rotated file is left complete.
"""

from __future__ import annotations

import os
from typing import BinaryIO

DEFAULT_MODE = 0o600

_requests = 0  # reopen requests so far; only ever incremented (from the signal handler)


def request_reopen() -> None:
    """Ask every sink that writes a file to reopen it before it writes on."""
    global _requests
    _requests += 1


class ReopenWatch:
    """Says once per reopen request that the sink holding it should reopen its file."""

    def __init__(self) -> None:
        self._seen = _requests

    def due(self) -> bool:
        if self._seen == _requests:
            return False
        self._seen = _requests
        return True


def parse_mode(text: str) -> int:
    """A file mode in octal (``0640``); ValueError if it is not one."""
    mode = int(text, 8)
    if not 0 <= mode <= 0o777:
        raise ValueError(f"not a file mode: {text!r}")
    return mode


def open_append(path: str, mode: int = DEFAULT_MODE) -> BinaryIO:
    """Open ``path`` for appending; a file this creates gets exactly ``mode``.

    An existing file keeps its mode: whoever made it chose it.
    """
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC
    try:
        fd = os.open(path, flags | os.O_EXCL, mode)
        os.fchmod(fd, mode)  # the umask only takes bits away; the configured mode is the mode
    except FileExistsError:
        fd = os.open(path, flags)
    return os.fdopen(fd, "ab")
