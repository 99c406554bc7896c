"""Events as the sinks receive them: the event map in the run's format, packed once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from hostcore.events import EventSpec
from hostcore.pipeline import tracee
from hostcore.signatures.spec import SignatureSpec

Rendered = tuple[bytes, Mapping[str, Any]]
"""An event's msgpack bytes and the map they encode, as every sink gets them."""


class Renderer:
    """Renders hostcore's event map as ``output_format`` says (``tracee``: Tracee's
    ``trace.Event``, with the types and Tracee ids ``specs`` declare) and packs it."""

    def __init__(self, output_format: str, specs: Iterable[EventSpec | SignatureSpec]) -> None:
        self._packer = msgpack.Packer()  # reused: packb would build a Packer per event
        self._tracee = tracee.TraceeEvents(specs) if output_format == "tracee" else None

    def __call__(self, event: Mapping[str, Any]) -> Rendered:
        if self._tracee is not None:
            event = self._tracee.render(event)
        return self._packer.pack(event), event
