"""What a run (live or replayed) will do, worked out and checked before anything starts."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hostcore.config import Config
from hostcore.events import EventSpec
from hostcore.packet import PacketKind
from hostcore.pipeline import filters
from hostcore.pipeline.filters import DataFilter, data_filter, parse_selector
from hostcore.pipeline.selection import resolve
from hostcore.plugins import Plugins
from hostcore.probe import NAME as PROBE_NAME
from hostcore.signatures import loading
from hostcore.signatures.loading import Enabled
from hostcore.signatures.spec import SignatureSpec


class RunError(RuntimeError):
    """The run cannot start; the message says why and what to do."""


@dataclass(frozen=True)
class Plan:
    """The events, signatures and probe of a run."""

    events: list[EventSpec]  # every event the run produces
    published: frozenset[str]  # the events and findings selected: the others feed signatures
    signatures: list[Enabled]
    needs: PacketKind
    uses_probe: bool
    data_filters: list[DataFilter]
    kernel_scope: list[str]  # compile flags for the scope filters the probe applies


def plan(config: Config, plugins: Plugins) -> Plan:
    specs = plugins.events()
    signature_specs = plugins.signatures(specs)
    catalogue: dict[str, EventSpec | SignatureSpec] = {**specs, **signature_specs}
    selectors, data_filters = [], []
    for text in config.enable:
        name, filter_text = parse_selector(text)
        selectors.append(name)
        if filter_text is not None:
            data_filters.append(data_filter(name, filter_text, catalogue))
    chosen = resolve(catalogue, selectors)
    _check_options("signature", config.signatures, signature_specs)
    _check_options("event", config.event_options, specs)
    signatures = loading.enable(
        [spec for spec in chosen if isinstance(spec, SignatureSpec)], catalogue, config.signatures
    )
    # Selecting a signature enables the events it consumes, as Tracee does.
    consumed = {name for enabled in signatures for name in enabled.consumes if name in specs}
    selected = {spec.name for spec in chosen if isinstance(spec, EventSpec)}
    events = sorted((specs[name] for name in selected | consumed), key=lambda spec: spec.id)
    unknown = {spec.depends_on for spec in events} - {PROBE_NAME, ""}
    if unknown:
        raise RunError(f"events depend on unknown base events: {', '.join(sorted(unknown))}")
    needs = PacketKind.NONE
    for spec in events:
        needs |= spec.needs
        if spec.uses_dns:
            needs |= PacketKind.DNS_ANSWER
    uses_probe = any(spec.depends_on == PROBE_NAME for spec in events)
    filters.scope(config.scope, lambda _: None)  # the syntax: a bad filter stops even --print-bpf
    in_kernel = filters.kernel_scope(config.scope) if uses_probe else []
    published = frozenset(spec.name for spec in chosen)
    return Plan(events, published, signatures, needs, uses_probe, data_filters, in_kernel)


def _check_options(
    kind: str,
    tables: Mapping[str, Mapping[str, object]],
    specs: Mapping[str, EventSpec] | Mapping[str, SignatureSpec],
) -> None:
    """Every ``[signatures.NAME]`` or ``[events.NAME]`` table (``kind`` says which) names an
    installed one and only its options."""
    for name, options in tables.items():
        spec = specs.get(name)
        if spec is None:
            raise RunError(
                f"[{kind}s.{name}] names no installed {kind}; installed: "
                f"{', '.join(sorted(specs)) or '(none)'} (see 'hostcore {kind}s')"
            )
        unknown = set(options) - set(spec.options)
        if unknown:
            raise RunError(
                f"{kind} {name!r} has no option {', '.join(sorted(unknown))}; "
                f"its options: {', '.join(spec.options) or '(none)'}"
            )
