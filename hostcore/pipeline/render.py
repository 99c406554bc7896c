"""Events as the sinks receive them: the event map in the run's format, packed once."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from hostcore.events import LOST_EVENTS_ID, LOST_EVENTS_NAME, EventSpec
from hostcore.pipeline import tracee
from hostcore.signatures.spec import SignatureSpec

Rendered = tuple[bytes, Mapping[str, Any]]
"""An event's msgpack bytes and the map they encode, as every sink gets them."""


class Renderer:
    """Renders hostcore's event map as ``output_format`` says (``tracee``: Tracee's
    ``trace.Event``, with the types and Tracee ids ``specs`` declare) and packs it."""

    def __init__(self, output_format: str, specs: Iterable[EventSpec | SignatureSpec]) -> None:
        self._packer = msgpack.Packer()  # reused: packb would build a Packer per event
        self._tracee: dict[str, tuple[dict[str, str], int]] | None = None
        if output_format == "tracee":
            self._tracee = {LOST_EVENTS_NAME: ({}, tracee.tracee_id(None, LOST_EVENTS_ID))}
            for spec in specs:
                declared = spec.tracee_id if isinstance(spec, EventSpec) else None
                types = {field.name: field.type for field in spec.fields}
                self._tracee[spec.name] = (types, tracee.tracee_id(declared, spec.id))

    def __call__(self, event: Mapping[str, Any]) -> Rendered:
        if self._tracee is not None:
            known = self._tracee.get(event["name"])
            if known is None:  # an event no spec declared (the sink author's kit makes them)
                known = self._tracee[event["name"]] = ({}, tracee.tracee_id(None, event["id"]))
            event = tracee.render(event, *known)
        return self._packer.pack(event), event
