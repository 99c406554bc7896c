"""CONTRIBUTING.md's hook reference is hookspecs.py's docstrings, rendered: they are the one
reference, so the two cannot drift. ``python tests/test_hook_docs.py`` prints the section."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path

from hostcore import hookspecs

CONTRIBUTING = Path(__file__).parent.parent / "CONTRIBUTING.md"
HEADING = "## Hook reference\n"
INTRO = (
    "Every hook, rendered from the docstrings of `hostcore/hookspecs.py`, which are the\n"
    "reference (`tests/test_hook_docs.py` checks that this section is exactly that).\n"
)


def plugin_hooks() -> list[tuple[str, Callable[..., object]]]:
    return [
        (name, function)
        for name, function in vars(hookspecs).items()
        if name.startswith("hostcore_") and inspect.isfunction(function)
    ]


def handler_hooks() -> list[tuple[str, Callable[..., object]]]:
    hooks = vars(hookspecs.EventHandlerHooks).items()
    return [(name, function) for name, function in hooks if name.startswith("hostcore_")]


def signature(function: Callable[..., object]) -> str:
    """As written in hookspecs.py (its annotations stay text there), without ``self``."""
    parameters = inspect.signature(function).parameters.values()
    params = ", ".join(f"{p.name}: {p.annotation}" for p in parameters if p.name != "self")
    return f"({params}) -> {inspect.signature(function).return_annotation}"


def markdown(docstring: str) -> str:
    """The reStructuredText of a docstring as Markdown: code, roles and parameters."""
    text = inspect.cleandoc(docstring)
    text = re.sub(r":(?:class|func|mod):`~?([^`]+)`", r"`\1`", text)
    text = re.sub(r"``([^`]+)``", r"`\1`", text)
    return re.sub(r"^:param (\w+):", r"- `\1`:", text, flags=re.M)


def reference() -> str:
    parts = [HEADING, "\n", INTRO, "\n### Plugin hooks\n"]
    sections = [(plugin_hooks(), ""), (handler_hooks(), hookspecs.EventHandlerHooks.__doc__)]
    for hooks, doc in sections:
        if doc:
            parts.append(f"\n### Event handler hooks\n\n{markdown(doc)}\n")
        for name, function in hooks:
            parts.append(f"\n#### `{name}{signature(function)}`\n\n")
            parts.append(markdown(function.__doc__ or "") + "\n")
    return "".join(parts)


def test_the_hook_reference_is_the_docstrings() -> None:
    text = CONTRIBUTING.read_text()
    assert HEADING in text
    documented = text[text.index(HEADING) :]
    assert documented == reference(), "run: .venv/bin/python tests/test_hook_docs.py"


def test_every_hook_has_a_reference_docstring() -> None:
    for name, function in [*plugin_hooks(), *handler_hooks()]:
        assert function.__doc__ and ":param " in function.__doc__, name


if __name__ == "__main__":
    print(reference(), end="")
