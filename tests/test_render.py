"""Events encoded from pieces kept (hostcore/pipeline/render.py, json_lines.py) are the
very bytes json.dumps and msgpack would make of the whole map, whatever the values."""

from __future__ import annotations

import json
from typing import Any

import msgpack
from hostcore_net_flow import begin, end, failed
from hypothesis import given
from hypothesis import strategies as st

from hostcore.events import event_map
from hostcore.pipeline.render import Renderer

SPECS = (begin.SPEC, end.SPEC, failed.SPEC)
values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**64 - 1),
    st.floats(allow_nan=False),
    st.text(),
    st.lists(st.text(), max_size=3),
)
contexts = st.dictionaries(st.sampled_from(["pid", "comm", "cgroup_id", "nodename"]), values)


def expected_line(event: dict[str, Any]) -> str:
    return json.dumps(event, separators=(",", ":")) + "\n"


@given(
    spec=st.sampled_from(SPECS),
    data=st.data(),
    context=contexts,
    timestamp=st.integers(min_value=0, max_value=2**64 - 1),
)
def test_declared_events_encode_as_the_whole_map_would(
    spec: Any, data: st.DataObject, context: dict[str, Any], timestamp: int
) -> None:
    renderer = Renderer("hostcore", SPECS)
    renderer.use(["msgpack", "json"])
    fields = {field.name: data.draw(values) for field in spec.fields}  # declared, any value
    event = event_map(spec.name, spec.id, timestamp, "node-é", context, fields)
    for _ in range(2):  # made, then from the pieces kept
        packed, line, rendered_event, is_marker = renderer(event)
        assert line == expected_line(event)
        assert msgpack.unpackb(packed, raw=False) == event
        assert (rendered_event, is_marker) == (event, False)


@given(extra=st.dictionaries(st.text(), values, min_size=1, max_size=3))
def test_data_not_shaped_as_declared_is_encoded_whole(extra: dict[str, Any]) -> None:
    renderer = Renderer("hostcore", SPECS)
    renderer.use(["json"])
    missing = {field.name: None for field in begin.SPEC.fields[1:]}  # one field short
    for data in (extra, missing, {**missing, **extra}):
        event = event_map(begin.SPEC.name, begin.SPEC.id, 1, "h", {}, data)
        assert renderer(event)[1] == expected_line(event)


def test_strings_and_numbers_never_share_a_text() -> None:
    """1 and True are one key to a dict: a string field must not give one the other's text."""
    renderer = Renderer("hostcore", SPECS)
    renderer.use(["json"])
    for value in (1, True, "1", 1.0, None, "true"):
        data = {field.name: value for field in begin.SPEC.fields}
        event = event_map(begin.SPEC.name, begin.SPEC.id, 1, "h", {}, data)
        assert renderer(event)[1] == expected_line(event)


def test_only_the_encodings_sinks_take_are_made() -> None:
    renderer = Renderer("hostcore", SPECS)
    event = event_map("lost_events", 1, 5, "h", {}, {"lost": {"x": 1}, "total": 1})
    renderer.use(["json"])
    assert renderer(event)[0] == b"" and renderer(event)[1] == expected_line(event)
    renderer.use(["msgpack"])
    assert renderer(event)[1] == "" and msgpack.unpackb(renderer(event)[0]) == event
