"""Every hook spec is documented in CONTRIBUTING.md with its exact signature, and only those."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from hostcore import hookspecs

CONTRIBUTING = Path(__file__).parent.parent / "CONTRIBUTING.md"
DOCUMENTED = re.compile(r"^### `(?P<name>hostcore_\w+)(?P<signature>\(.*\) -> .*)`$", re.M)
SPECS = {
    name: function
    for name, function in vars(hookspecs).items()
    if name.startswith("hostcore_") and inspect.isfunction(function)
}


def documented() -> dict[str, str]:
    return {m["name"]: m["signature"] for m in DOCUMENTED.finditer(CONTRIBUTING.read_text())}


def written(name: str) -> str:
    """The spec's signature as written in hookspecs.py (its annotations stay text there)."""
    signature = inspect.signature(SPECS[name])
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"({params}) -> {signature.return_annotation}"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_hook_is_documented_with_its_exact_signature(name: str) -> None:
    assert documented().get(name) == written(name)


def test_only_existing_hooks_are_documented() -> None:
    assert set(documented()) == set(SPECS)


def test_every_hook_has_a_reference_docstring() -> None:
    for name, function in SPECS.items():
        assert function.__doc__ and ":param register:" in function.__doc__, name
