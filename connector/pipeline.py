"""The public conversion API: HL7 v2 bytes -> reports -> labels -> validated FHIR transaction Bundles.

Both `radlabel convert` and the Kafka connector call :func:`convert_message`, so the same message gives
byte-identical bundles on either path. Everything here except the labeler call is a pure function.
"""

from __future__ import annotations

from datetime import timezone, tzinfo

from pydantic import BaseModel, ConfigDict

from mappings.labels import Labeler, LabelerError, LabelSet

from connector.fhir.bundle import build_bundle, build_bundle_shared, bundle_bytes, bundle_id
from connector.fhir.validate import InvalidResource, validate_bundle
from connector.hl7.errors import REJECT_REASONS, MessageRejected
from connector.hl7.framing import split_messages
from connector.hl7.limits import DEFAULT_LIMITS, ParseLimits
from connector.hl7.models import Report
from connector.hl7.parse import parse_reports as _parse_reports

__all__ = [
    "REJECT_REASONS",
    "Converted",
    "InvalidResource",
    "MessageRejected",
    "ParseLimits",
    "Report",
    "build_bundle",
    "build_validated_bundle",
    "bundle_bytes",
    "bundle_id",
    "convert_message",
    "convert_reports",
    "label_reports",
    "parse_reports",
    "split_messages",
]


class Converted(BaseModel):
    """One report of a message, converted."""

    model_config = ConfigDict(frozen=True)
    key: str  # facility|accession: Kafka record key, same for every version of the report (contains an identifier)
    bundle_id: str  # UUIDv5, PHI-free: safe to log
    status: str  # HL7 report status P/F/C/X
    bundle: bytes  # canonical JSON of the validated transaction Bundle
    labels: LabelSet


def parse_reports(
    raw: bytes, *, default_tz: tzinfo = timezone.utc, limits: ParseLimits = DEFAULT_LIMITS
) -> list[Report]:
    """One message's bytes (MLLP-framed or not) -> its reports. Raises :class:`MessageRejected`."""
    return _parse_reports(raw, default_tz=default_tz, limits=limits)


def build_validated_bundle(report: Report, labels: LabelSet) -> bytes:
    """Build, validate (fhir.resources) and serialise one bundle. Raises :class:`InvalidResource` on a bug."""
    bundle = build_bundle_shared(report, labels)
    validate_bundle(bundle)
    return bundle_bytes(bundle)


def convert_reports(reports: list[Report], labels: list[LabelSet]) -> list[Converted]:
    return [
        Converted(
            key=report.accession_key,
            bundle_id=bundle_id(report),
            status=report.status,
            bundle=build_validated_bundle(report, label_set),
            labels=label_set,
        )
        for report, label_set in zip(reports, labels, strict=True)
    ]


async def label_reports(reports: list[Report], labeler: Labeler) -> list[LabelSet | LabelerError]:
    """Label the reports that need it in one batch; one outcome per report (a LabelSet or that report's typed
    labeler error). A cancelled report (status X) is not labeled: all its findings are retired, so it gets an
    empty LabelSet naming the labeler. Whole-batch failures (LabelerUnavailable) propagate."""
    to_label = [i for i, report in enumerate(reports) if report.status != "X"]
    outcomes = await labeler.label_batch_detailed([reports[i].text for i in to_label]) if to_label else []
    out: list[LabelSet | LabelerError] = [LabelSet(labeler=labeler.info) for _ in reports]
    for i, outcome in zip(to_label, outcomes, strict=True):
        out[i] = outcome
    return out


async def convert_message(
    raw: bytes, labeler: Labeler, *, default_tz: tzinfo = timezone.utc, limits: ParseLimits = DEFAULT_LIMITS
) -> list[Converted]:
    """One message -> one :class:`Converted` per report. Raises :class:`MessageRejected` for bad input, and the
    labeler's errors (LabelerUnavailable for the batch; AnswerInvalid / ReportTooLong for a report) so the caller
    can retry or dead-letter without losing the message."""
    reports = parse_reports(raw, default_tz=default_tz, limits=limits)
    outcomes = await label_reports(reports, labeler)
    for outcome in outcomes:
        if isinstance(outcome, LabelerError):
            raise outcome
    return convert_reports(reports, outcomes)  # type: ignore[arg-type]
