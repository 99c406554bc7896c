"""Scope and data filters: parsing, errors, and matching rules."""

from __future__ import annotations

from typing import Any

import pytest
from hostcore_net_flow import begin

from hostcore.pipeline.filters import (
    FilterError,
    Match,
    data_filter,
    data_tests,
    kernel_scope,
    parse_selector,
    scope,
)

SPECS = {begin.SPEC.name: begin.SPEC}
CONTEXT: dict[str, Any] = {
    "pid": 42,
    "tid": 42,
    "comm": "curl",
    "uid": 1000,
    "cgroup_id": 7,
    "container_id": "",
    "owner": "connected",
}
PATHS = {7: "/system.slice/app.service", 8: "/system.slice/docker-" + "ab" * 32 + ".scope"}


def _scope(*expressions: str) -> Any:
    return scope(expressions, PATHS.get)


@pytest.mark.parametrize(
    ("values", "negate", "value", "passes"),
    [
        (("curl",), False, "curl", True),
        (("curl", "wget"), False, "wget", True),
        (("curl",), True, "curl", False),
        (("cu*",), False, "curl", True),
        (("*rl",), False, "curl", True),
        (("*ur*",), False, "curl", True),
        (("*x",), False, "curl", False),
        (("a.test",), False, ["b.test", "a.test"], True),  # a list passes if any item does
        (("a.test",), True, ["b.test", "a.test"], False),
        (("curl",), False, None, False),  # unknown never passes...
        (("curl",), True, None, False),  # ... either way
        ((443,), False, 443, True),
        ((443,), False, 80, False),
    ],
)
def test_match(values: tuple[Any, ...], negate: bool, value: Any, passes: bool) -> None:
    assert Match("f", values, negate)({"f": value}) is passes


@pytest.mark.parametrize(
    ("expressions", "context_change", "passes"),
    [
        (("comm=curl",), {}, True),
        (("comm!=curl",), {}, False),
        (("pid=41,42",), {}, True),
        (("pid!=42",), {}, False),
        (("uid=0",), {}, False),
        (("uid=1000", "comm=wget"), {}, False),  # all must pass
        (("cgroup=/system.slice",), {}, True),  # that cgroup or below
        (("cgroup=/system",), {}, False),  # a path, not a string prefix
        (("cgroup=7",), {}, True),
        (("cgroup!=7",), {}, False),
        (("container",), {}, False),
        (("!container",), {}, True),
        (("container",), {"cgroup_id": 8, "container_id": "ab" * 32}, True),
        (("container=abab",), {"cgroup_id": 8, "container_id": "ab" * 32}, True),
        (("container=abcd",), {"cgroup_id": 8, "container_id": "ab" * 32}, False),
        (("!container",), {"container_id": None}, False),  # unknown cgroup: neither
        (("comm=curl",), {"comm": None, "pid": None}, False),  # unknown owner
    ],
)
def test_scope(expressions: tuple[str, ...], context_change: dict[str, Any], passes: bool) -> None:
    assert _scope(*expressions)({**CONTEXT, **context_change}) is passes


def test_no_scope_is_no_test() -> None:
    assert _scope() is None


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("comm", "expected FIELD=VALUE"),
        ("colour=red", "unknown scope 'colour'"),
        ("pid=abc", "'pid' is a number"),
        ("comm=,", "no value"),
    ],
)
def test_bad_scope(expression: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        _scope(expression)


def test_data_filters_on_one_event_must_all_pass() -> None:
    filters = [
        data_filter("net_flow_tcp_begin", "dst_port=443,8443", SPECS),
        data_filter("net_flow_tcp_begin", "dst_dns=*.example.com", SPECS),
    ]
    test = data_tests(filters)["net_flow_tcp_begin"]
    assert test({"dst_port": 443, "dst_dns": ["www.example.com"]})
    assert not test({"dst_port": 443, "dst_dns": []})
    assert not test({"dst_port": 80, "dst_dns": ["www.example.com"]})


@pytest.mark.parametrize(
    ("event", "text", "message"),
    [
        ("net_flow_tcp_begin", "port=1", "has no field 'port' \\(its fields: conn_direction"),
        ("net_flow_tcp_begin", "dst_port=https", "'dst_port' is a number"),
        ("net_flow_tcp_begin", "dst_port", "expected FIELD=VALUE"),
        ("flows", "dst_port=1", "apply to events, and 'flows' is not one"),
    ],
)
def test_bad_data_filter(event: str, text: str, message: str) -> None:
    with pytest.raises(FilterError, match=message):
        data_filter(event, text, SPECS)


def test_selector_splits_at_data() -> None:
    assert parse_selector("flows") == ("flows", None)
    assert parse_selector("net_flow_tcp_begin.data.dst=10.0.0.1") == (
        "net_flow_tcp_begin",
        "dst=10.0.0.1",
    )


def test_kernel_takes_the_positive_uid_pid_and_cgroup_id_forms() -> None:
    flags = kernel_scope(
        ["uid=0,1000", "pid=0x10", "pid!=5", "comm=curl", "cgroup=/app.slice", "cgroup=9,12"]
    )
    assert flags == [
        "-DSCOPE_OWNER(o)=(((o)->uid == 0 || (o)->uid == 1000) && ((o)->pid == 16))",
        "-DSCOPE_CGROUP(skb)=((bpf_skb_cgroup_id(skb) == 9 || bpf_skb_cgroup_id(skb) == 12))",
    ]


@pytest.mark.parametrize(
    ("value", "path", "passes"),
    [
        ("system.slice", "/system.slice/app.service", True),  # relative to the root
        ("/system.slice//", "/system.slice", True),
        ("/", "/anything", True),
        ("/system.slice", "/system.slice2", False),
    ],
)
def test_cgroup_paths_are_directories(value: str, path: str, passes: bool) -> None:
    test = scope([f"cgroup={value}"], {3: path}.get)
    assert test is not None and test({"cgroup_id": 3}) is passes


def test_unresolved_cgroup_passes_neither_form() -> None:
    for op in ("=", "!="):
        test = scope([f"cgroup{op}/system.slice"], {}.get)
        assert test is not None and not test({"cgroup_id": 3})
