"""denied_domain: a connection to a name on a deny list, matched through CNAME chains."""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any

import structlog

from hostcore import Field, Report, SignatureContext, SignatureSpec
from hostcore_signatures import options

GLOB_CHARACTERS = frozenset("*?[")

log = structlog.get_logger()


def _normal(name: str) -> str:
    return name.lower().rstrip(".")


class DenyList:
    """Names to deny: ``evil.test`` denies it and every name below it; an entry with
    ``*``, ``?`` or ``[`` is a glob on the whole name (``*.cdn.test``, ``ads?.test``).
    Matching ignores case and a trailing dot."""

    def __init__(self, entries: tuple[str, ...]) -> None:
        self._domains = {_normal(e) for e in entries if not GLOB_CHARACTERS & set(e)}
        self._globs = [_normal(e) for e in entries if GLOB_CHARACTERS & set(e)]

    def rule(self, name: str) -> str | None:
        """The entry that denies ``name``, or None."""
        name = _normal(name)
        labels = name.split(".")
        for start in range(len(labels)):
            suffix = ".".join(labels[start:])
            if suffix in self._domains:
                return suffix
        return next((glob for glob in self._globs if fnmatchcase(name, glob)), None)


class DeniedDomain:
    """One finding per connection whose destination has a denied name (any in its chain)."""

    def __init__(self, context: SignatureContext) -> None:
        domains = options.strings(context.options, "domains")
        if not domains:
            log.warning(
                "denied_domain has no domains: it finds nothing until "
                "[signatures.denied_domain] domains = [...] is set"
            )
        self._deny = DenyList(domains)

    def on_event(self, event: Mapping[str, Any], report: Report) -> None:
        data = event["data"]
        for name in data["dst_dns"]:
            rule = self._deny.rule(name)
            if rule is not None:
                finding = {"domain": name, "rule": rule, "dst": data["dst"]}
                report({**finding, "dst_port": data["dst_port"]}, [event])
                return


SPEC = SignatureSpec(
    name="denied_domain",
    id=6001,
    signature_id="HCS-1",
    title="Connection to a denied domain",
    version="1.0.0",
    severity="high",
    description="A process connected to an address that DNS gave a denied name "
    "(the question or any CNAME in its chain)",
    consumes=("net_flow_tcp_begin.data.conn_direction=outgoing",),
    handler=DeniedDomain,
    fields=(
        Field("domain", "string"),
        Field("rule", "string"),
        Field("dst", "string"),
        Field("dst_port", "uint16"),
    ),
    tags=("mitre-attack:T1071", "command-and-control"),
    properties={
        "Technique": "Application Layer Protocol",
        "id": "attack-pattern--355be19c-ffc9-46d5-8d50-d6a036c675b6",
    },
    options={"domains": "denied names: a domain (and every name below it) or a glob"},
)
