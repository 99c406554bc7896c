"""What a signature plugin declares, and what the core hands it.

A signature consumes events (by name, optionally with the data filters users
write) and reports findings. A finding is an event like any other: its own
name and id, in the ``signatures`` set, its data holding the signature's own
fields plus ``signature`` (the metadata) and ``triggered_by`` (the events that
led to it). Signatures may consume other signatures' findings.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from hostcore.events import Field

SIGNATURES_SET = "signatures"
SEVERITIES = ("info", "low", "medium", "high", "critical")
# The fields the core adds to every finding's data.
FINDING_FIELDS = (Field("signature", "map"), Field("triggered_by", "[]event"))
# Properties Tracee's output derives from other metadata (hostcore/pipeline/tracee.py).
DERIVED_PROPERTIES = ("Severity", "signatureID", "signatureName")


class Report(Protocol):
    """What a signature calls to report one finding."""

    def __call__(self, data: Mapping[str, Any], triggered_by: Sequence[Mapping[str, Any]]) -> None:
        """``data`` holds the signature's own fields; ``triggered_by`` the event maps
        that led to the finding (at least one). The finding takes the timestamp and
        the process context of the last of them."""


class Signature(Protocol):
    """Turns the events a signature consumes into findings; one instance per run."""

    def on_event(self, event: Mapping[str, Any], report: Report) -> None:
        """Called with each consumed event that passed the signature's filters, in order.

        ``event`` is the event map sinks receive (read-only). Keep state bounded:
        the run may last for months.
        """


@dataclass
class SignatureContext:
    """What the core gives a signature when a run starts."""

    count: Callable[[str, int], None]
    """``count(name, n)``: add to one of the run's counters (reported with the totals)."""
    options: Mapping[str, Any]
    """The ``[signatures.NAME]`` table of the config file; only declared option names."""


@dataclass(frozen=True)
class SignatureSpec:
    """A signature a plugin provides.

    ``name`` and ``id`` are its findings' event name and id (unique among events
    and signatures). Every selector in ``consumes`` must name an installed event
    or signature, or the signature is not loaded; those in
    ``consumes_if_installed`` are consumed when some plugin provides them and
    skipped otherwise. ``handler`` is called once per run, only when the
    signature is enabled.
    """

    name: str
    id: int
    signature_id: str  # shown to people: "HCS-1"
    title: str
    version: str
    severity: str  # one of SEVERITIES
    description: str
    consumes: tuple[str, ...]  # "EVENT" or "EVENT.data.FIELD=VALUE[,VALUE...]" (or !=)
    handler: Callable[[SignatureContext], Signature]
    fields: tuple[Field, ...] = ()  # the finding's own data fields
    tags: tuple[str, ...] = ()  # e.g. "mitre-attack:T1046"
    consumes_if_installed: tuple[str, ...] = ()
    options: Mapping[str, str] = field(default_factory=dict)  # option name -> help
    # Further metadata, as Tracee's SignatureMetadata.Properties: e.g. the MITRE ATT&CK
    # technique's name ("Technique") and STIX id ("id"); text, numbers or booleans.
    properties: Mapping[str, str | int | float | bool] = field(default_factory=dict)
    plugin: str = field(default="", compare=False)  # filled in by the core

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"signature {self.name!r}: severity must be one of {', '.join(SEVERITIES)}, "
                f"got {self.severity!r}"
            )
        reserved = {f.name for f in FINDING_FIELDS} & {f.name for f in self.fields}
        if reserved:
            raise ValueError(
                f"signature {self.name!r}: the core fills the field {reserved.pop()!r} itself"
            )
        derived = set(DERIVED_PROPERTIES) & set(self.properties)
        if derived:
            raise ValueError(
                f"signature {self.name!r}: the core fills the property {derived.pop()!r} itself"
            )

    @property
    def sets(self) -> tuple[str, ...]:
        return (SIGNATURES_SET,)

    def metadata(self) -> dict[str, Any]:
        """The ``signature`` map every finding carries."""
        return {
            "id": self.signature_id,
            "name": self.title,
            "version": self.version,
            "severity": self.severity,
            "description": self.description,
            "tags": list(self.tags),
            "properties": dict(self.properties),
        }
