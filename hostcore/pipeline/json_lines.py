"""Event maps as JSON lines, fast: one encoder compiled per event from its declared fields.

``json.dumps`` walks every map, key and value of every event (about 3.5 us for a flow
event). An event's keys are known in advance, and most of its values repeat (addresses,
names, a process's context): each encoder is one f-string over the event's declared
fields, with the text of each string, and of each context map, kept once made. What
it writes is what ``json.dumps(event, separators=(",", ":"))`` writes, byte for byte,
but for the order of keys in ``data``, which is the declared order; data that is not
shaped as declared (a missing or an extra field) is handed to ``json.dumps`` whole.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from hostcore.bounded import BoundedCache
from hostcore.events import SCHEMA_VERSION, Field

STRINGS_LIMIT = 65536  # distinct strings kept as JSON text (addresses, names, comms)
CONTEXTS_LIMIT = 65536  # distinct context maps kept as JSON text

_dumps = json.JSONEncoder(separators=(",", ":")).encode
DataEncoder = Callable[[Mapping[str, Any]], str]


class _Texts(dict[Any, str]):
    """The JSON text of strings, made on first use (``texts[value]``: a dict lookup when
    known), at most ``limit`` of them. Only strings are kept (so no other value can share
    a key with one, as True does with 1); an unhashable value raises TypeError."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self._limit = limit

    def __missing__(self, value: Any) -> str:
        text = _dumps(value)
        if type(value) is str:
            if len(self) >= self._limit:
                self.clear()
            self[value] = text
        return text


class JsonLines:
    """Renders hostcore's event maps as JSON lines (a newline at the end of each)."""

    def __init__(self) -> None:
        self._strings = _Texts(STRINGS_LIMIT)
        # By the map's id, with the map itself: a context map is shared by every event
        # of its process, and kept alive here while its text is.
        self._contexts: BoundedCache[int, tuple[Mapping[str, Any], str]] = BoundedCache(
            CONTEXTS_LIMIT
        )
        self._data: dict[str, DataEncoder] = {}
        self._heads: dict[tuple[str, int, str], tuple[str, str]] = {}

    def declare(self, name: str, fields: Sequence[Field]) -> None:
        """Compile the encoder of event ``name``'s data from its declared fields."""
        self._data[name] = _compile(fields, self._strings, self._strings_list)

    def line(self, event: Mapping[str, Any]) -> str:
        name, host = event["name"], event["host"]
        head = self._heads.get((name, event["id"], host))
        if head is None:
            head = self._heads[(name, event["id"], host)] = (
                f'{{"v":{SCHEMA_VERSION},"name":{_dumps(name)},"id":{event["id"]},"timestamp":',
                f',"host":{_dumps(host)},"context":',
            )
        data = event["data"]
        encode = self._data.get(name)
        data_json = _dumps(data) if encode is None else encode(data)
        timestamp = event["timestamp"]
        timestamp_json = str(timestamp) if type(timestamp) is int else _dumps(timestamp)
        return (
            f"{head[0]}{timestamp_json}{head[1]}{self._context(event['context'])}"
            f',"data":{data_json}}}\n'
        )

    def _context(self, context: Mapping[str, Any]) -> str:
        known = self._contexts.get(id(context))
        if known is not None and known[0] is context:
            return known[1]
        return self._contexts.put(id(context), (context, _dumps(context)))[1]

    def _strings_list(self, value: Any) -> str:
        if type(value) is not list:
            return _dumps(value)
        if not value:
            return "[]"
        return "[" + ",".join([self._strings[item] for item in value]) + "]"


def _compile(
    fields: Sequence[Field], texts: _Texts, strings_list: Callable[[Any], str]
) -> DataEncoder:
    """``data`` -> its JSON, for data with exactly ``fields``' names (else json.dumps)."""
    constants: dict[str, Any] = {"dumps": _dumps, "expected": len(fields), "T": texts}
    parts = []
    for position, declared in enumerate(fields):
        prefix = "{" if position == 0 else ","
        constants[f"L{position}"] = f"{prefix}{_dumps(declared.name)}:"
        constants[f"K{position}"] = declared.name
        value = f"d[K{position}]"
        if declared.type == "string":  # a few values, repeating: looked up (``T[value]``)
            parts.append(f"{{L{position}}}{{T[{value}]}}")
            continue
        if declared.type == "[]string":  # most often empty (no DNS name): made inline
            constants[f"E{position}"] = strings_list
            inline = f'"[]" if {value} == [] else E{position}({value})'
            parts.append(f"{{L{position}}}{{{inline}}}")
            continue
        if declared.type.startswith(("uint", "int", "float")):  # an int is its own text
            number = f"v{position}"
            inline = f"{number} if type({number} := {value}) is int else dumps({number})"
            parts.append(f"{{L{position}}}{{{inline}}}")
            continue
        parts.append(f"{{L{position}}}{{dumps({value})}}")
    if not fields:
        return _dumps
    arguments = ", ".join(f"{name}={name}" for name in constants)
    body = "".join(parts) + "}}"  # the object's closing brace, in the f-string's own escape
    source = (
        f"def encode(d, {arguments}):\n"
        "    if len(d) != expected:\n"
        "        return dumps(d)\n"
        "    try:\n"
        "        return f'" + body + "'\n"
        "    except (KeyError, TypeError):  # a field missing, or a value T cannot hold\n"
        "        return dumps(d)\n"
    )
    namespace: dict[str, Any] = dict(constants)
    exec(source, namespace)  # one f-string per event kind: see the module's docstring
    encode: DataEncoder = namespace["encode"]
    return encode
