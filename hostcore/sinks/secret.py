"""Secrets in options: named by where they are (``file:PATH`` or ``env:NAME``), never given inline.

A password typed on the command line shows in ``ps`` and in shell history, and one in
a config file is easily copied with it; a file of its own (mode 0600) or the service's
environment keeps it apart. The value read is never logged or put in a message.
"""

from __future__ import annotations

import os
from pathlib import Path

from hostcore.options import OptionError

SECRET_FORMS = "file:PATH or env:NAME"


def read_secret(name: str, where: str) -> str:
    """The secret that option ``name`` points at, without its trailing newline."""
    kind, _, place = where.partition(":")
    if kind == "file" and place:
        try:
            return Path(place).read_text().rstrip("\r\n")
        except OSError as error:
            raise OptionError(f"{name}: cannot read {place}: {error.strerror}") from error
    if kind == "env" and place:
        value = os.environ.get(place, "")
        if not value:
            raise OptionError(f"{name}: the environment variable {place} is not set")
        return value
    raise OptionError(
        f"{name} must say where the secret is, {SECRET_FORMS} "
        "(never the secret itself: it would show in the process list and the logs)"
    )
