"""Events as the sinks receive them: the event map in the run's format, encoded once.

A sink takes msgpack (the default) or JSON lines (``encoding = "json"``, as stdout
does); each event is encoded only in the encodings the run's sinks take, once for all
of them. hostcore's map is encoded from pieces made once: the envelope of each event
kind, each process's context, and (for JSON) each declared field's text.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack

from hostcore.bounded import BoundedCache
from hostcore.events import SCHEMA_VERSION, EventSpec
from hostcore.pipeline import tracee
from hostcore.pipeline.json_lines import CONTEXTS_LIMIT, JsonLines
from hostcore.signatures.spec import SignatureSpec
from hostcore.sinks.base import ENCODINGS, Rendered, Unencodable

MSGPACK, JSON = ENCODINGS
_dumps = json.JSONEncoder(separators=(",", ":")).encode


class _Msgpack:
    """hostcore's event maps as msgpack, the envelope and the context packed once each."""

    def __init__(self) -> None:
        self._packer = msgpack.Packer()  # reused: packb would build a Packer per event
        self._heads: dict[tuple[str, int, str], tuple[bytes, bytes]] = {}
        self._contexts: BoundedCache[int, tuple[Mapping[str, Any], bytes]] = BoundedCache(
            CONTEXTS_LIMIT
        )

    def whole(self, value: Any) -> bytes:
        """``value`` packed as it is (a map other than hostcore's)."""
        packed: bytes = self._packer.pack(value)
        return packed

    def pack(self, event: Mapping[str, Any]) -> bytes:
        if len(event) != 7:  # not the map events.event_map makes
            return self.whole(event)
        pack = self._packer.pack
        key = (event["name"], event["id"], event["host"])
        head = self._heads.get(key)
        if head is None:
            head = self._heads[key] = (
                self._packer.pack_map_header(7)
                + b"".join(map(pack, ("v", SCHEMA_VERSION, "name", key[0], "id", key[1])))
                + pack("timestamp"),
                b"".join(map(pack, ("host", key[2], "context"))),
            )
        context = event["context"]
        known = self._contexts.get(id(context))
        if known is None or known[0] is not context:
            known = self._contexts.put(id(context), (context, pack(context)))
        return b"".join(
            (head[0], pack(event["timestamp"]), head[1], known[1], b"\xa4data", pack(event["data"]))
        )


class Renderer:
    """Renders hostcore's event map as ``output_format`` says (``tracee``: Tracee's
    ``trace.Event``, with the types and Tracee ids ``specs`` declare) in the encodings
    the sinks take (``use``)."""

    def __init__(self, output_format: str, specs: Iterable[EventSpec | SignatureSpec]) -> None:
        specs = list(specs)
        self._tracee = tracee.TraceeEvents(specs) if output_format == "tracee" else None
        self._msgpack: _Msgpack | None = _Msgpack()
        self._json: JsonLines | None = None
        self._lines = JsonLines()
        for spec in specs:
            self._lines.declare(spec.name, spec.fields)

    def use(self, encodings: Iterable[str]) -> None:
        """Encode in these (of ENCODINGS) only: what the run's sinks take."""
        wanted = set(encodings)
        self._msgpack = _Msgpack() if MSGPACK in wanted else None
        self._json = self._lines if JSON in wanted else None

    def __call__(self, event: Mapping[str, Any]) -> Rendered:
        if self._tracee is not None:
            return self._each_alone(self._tracee.render(event))
        try:  # hostcore's map, the common case, inline: this runs per event
            packed = self._msgpack.pack(event) if self._msgpack is not None else b""
            line = self._json.line(event) if self._json is not None else ""
        except (TypeError, ValueError, OverflowError):  # a value an encoding cannot hold
            return self._each_alone(event)
        return packed, line, event, False

    def _pack(self, shown: Mapping[str, Any]) -> bytes:
        if self._msgpack is None:
            return b""
        return self._msgpack.pack(shown) if self._tracee is None else self._msgpack.whole(shown)

    def _line(self, shown: Mapping[str, Any]) -> str:
        if self._json is None:
            return ""
        return self._json.line(shown) if self._tracee is None else _dumps(shown) + "\n"

    def _each_alone(self, shown: Mapping[str, Any]) -> Rendered:
        """Each encoding on its own: those that can be made, and for each other what
        went wrong (a sink that takes it counts the event as its write error)."""
        encoded: list[Any] = []
        for encode in (self._pack, self._line):
            try:
                encoded.append(encode(shown))
            except (TypeError, ValueError, OverflowError) as error:
                unencodable = Unencodable(f"{encode.__name__[1:]}: {error}")
                unencodable.__cause__ = error
                encoded.append(unencodable)
        return encoded[0], encoded[1], shown, False
