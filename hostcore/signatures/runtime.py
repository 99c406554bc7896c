"""Signatures at run time: started, fed the events they consume, their findings built."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

from hostcore.log import FailureLog
from hostcore.pipeline.delivery import Consumer, Deliver, Delivery
from hostcore.pipeline.filters import Test
from hostcore.plugins import started
from hostcore.signatures.loading import Enabled
from hostcore.signatures.spec import Report, Signature, SignatureContext, SignatureSpec

# The keys of a triggering event kept in a finding: its version and host are the finding's.
TRIGGER_KEYS = ("name", "id", "timestamp", "context", "data")


def start_signatures(
    enabled: Sequence[Enabled],
    delivery: Delivery,
    count: Callable[[str, int], None],
    failures: FailureLog,
) -> None:
    """Start each enabled signature and subscribe it to the events it consumes; its
    findings go through ``delivery`` like any event."""
    for signature in enabled:
        spec = signature.spec
        context = SignatureContext(count, signature.options)
        handler = started("signature", spec.name, spec.plugin, partial(spec.handler, context))
        report = reporter(spec, delivery.route(spec.name, spec.id))

        def failed(spec: SignatureSpec = spec) -> None:
            count(f"signature_errors.{spec.name}", 1)
            failures.exception(f"signature:{spec.name}", "signature failed", signature=spec.name)

        for name, test in signature.consumes.items():
            delivery.subscribe(name, consumer(handler, test, report, failed))


def reporter(spec: SignatureSpec, deliver: Deliver) -> Report:
    """The ``report`` a signature calls: builds the finding and delivers it as an event."""
    metadata = spec.metadata()

    def report(data: Mapping[str, Any], triggered_by: Sequence[Mapping[str, Any]]) -> None:
        if not triggered_by:
            raise ValueError(f"signature {spec.name!r} reported a finding with no trigger")
        last = triggered_by[-1]
        finding = {
            **data,
            "signature": metadata,
            "triggered_by": [{key: event[key] for key in TRIGGER_KEYS} for event in triggered_by],
        }
        deliver(last["timestamp"], finding, last["context"])

    return report


def consumer(
    signature: Signature, test: Test | None, report: Report, failed: Callable[[], None]
) -> Consumer:
    """Feeds ``signature`` the events that pass ``test``; ``failed`` hears of each exception."""

    def consume(event: Mapping[str, Any]) -> None:
        if test is not None and not test(event["data"]):
            return
        try:
            signature.on_event(event, report)
        except Exception:
            failed()

    return consume
