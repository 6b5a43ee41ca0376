"""The public conversion API: HL7 v2 bytes -> reports -> (triage) -> labels -> validated FHIR transaction Bundles.

Both `radlabel convert` and the Kafka connector use these functions, so the same message gives byte-identical
bundles on either path. Everything here except the labeler call is a pure function.

Triage (docs/HL7_FHIR.md "What gets labeled") runs before any labeler is asked: a report is skipped, with a PHI-free
reason, when its study is not a chest radiograph (mappings.scope) or its text asserts nothing
(mappings.nondiagnostic). A skipped report publishes nothing, so it changes nothing on the patient's record: an
addendum-only correction leaves the earlier version's findings in place.
"""

from __future__ import annotations

from datetime import datetime, timezone, tzinfo

from pydantic import BaseModel, ConfigDict

from mappings.labels import Labeler, LabelerError, LabelSet
from mappings.nondiagnostic import non_diagnostic_reason
from mappings.scope import ScopeRules, StudyFacts, default_rules

from connector.fhir.bundle import build_bundle, build_bundle_shared, bundle_bytes, bundle_id
from connector.fhir.identifiers import (
    STANDALONE,
    UNPUBLISHABLE_REASONS,
    OutputProfile,
    Unpublishable,
    resolve_identifiers,
)
from connector.fhir.validate import InvalidResource, validate_bundle
from connector.hl7.errors import REJECT_REASONS, MessageRejected
from connector.hl7.framing import split_messages
from connector.hl7.limits import DEFAULT_LIMITS, ParseLimits
from connector.hl7.models import Report
from connector.hl7.parse import parse_reports as _parse_reports

__all__ = [
    "REJECT_REASONS",
    "STANDALONE",
    "UNPUBLISHABLE_REASONS",
    "OutputProfile",
    "Unpublishable",
    "version_headers",
    "Converted",
    "Skip",
    "Skipped",
    "study_facts",
    "triage",
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
    # The version facts a consumer needs without parsing the bundle (Kafka headers; `convert`'s index.jsonl).
    report_id: str = ""  # DiagnosticReport id: UUIDv5 of facility|accession, PHI-free
    report_time: str = ""  # OBR-22 (else MSH-7), ISO 8601 with offset; "" when unknown
    message_time: str = ""  # MSH-7, ISO 8601 with offset; "" when unknown
    profile: str = "standalone"  # the output profile that wrote the bundle
    identifier_fallbacks: tuple[str, ...] = ()  # "patient" / "accession": no site rule named the authority


def version_headers(item: Converted) -> list[tuple[str, bytes]]:
    """What a consumer orders and retires by (docs/HL7_FHIR.md "Output record"): ASCII, empty when unknown."""
    return [
        ("report-id", item.report_id.encode()),
        ("report-status", item.status.encode()),
        ("report-time", item.report_time.encode()),
        ("message-time", item.message_time.encode()),
        ("fhir-profile", item.profile.encode()),
    ]


class Skip(BaseModel):
    """Why a report is not labeled (PHI-free codes): ``excluded:*`` (study scope) or ``non-diagnostic:*``."""

    model_config = ConfigDict(frozen=True)
    reason: str
    signal: str  # which signal decided: code | procedure-text | service-section | report-text | text


class Skipped(BaseModel):
    """One report of a message that publishes nothing."""

    model_config = ConfigDict(frozen=True)
    key: str
    bundle_id: str
    status: str
    reason: str
    signal: str


def study_facts(report: Report) -> StudyFacts:
    return StudyFacts(
        procedure_code=report.procedure_code,
        procedure_system=report.procedure_system,
        procedure_text=report.procedure_display,
        alt_code=report.procedure_alt_code,
        alt_text=report.procedure_alt_display,
        alt_system=report.procedure_alt_system,
        service_section=report.service_section,
        body_part=report.body_part,
        report_text=report.text,
    )


def triage(report: Report, rules: ScopeRules | None = None) -> Skip | None:
    """None when the report is labeled; else why not. Scope first (a brain MRI saying "no acute findings" is out of
    scope, not a normal chest), then the text. A cancellation (status X) carries no text to judge: it is skipped only
    when its order itself names another study, so a cancelled chest radiograph always withdraws its findings."""
    decision = (rules or default_rules()).decide_order(
        (report.procedure_code, report.procedure_system, report.procedure_display, report.procedure_alt_code,
         report.procedure_alt_display, report.procedure_alt_system, report.service_section, report.body_part),
        report.text,
    )
    if report.status == "X":
        if not decision.in_scope and decision.signal != "report-text":
            return Skip(reason=decision.reason, signal=decision.signal)
        return None
    if not decision.in_scope:
        return Skip(reason=decision.reason, signal=decision.signal)
    reason = non_diagnostic_reason(report.text)
    if reason is not None:
        return Skip(reason=reason, signal="text")
    return None


def parse_reports(
    raw: bytes, *, default_tz: tzinfo = timezone.utc, limits: ParseLimits = DEFAULT_LIMITS
) -> list[Report]:
    """One message's bytes (MLLP-framed or not) -> its reports. Raises :class:`MessageRejected`."""
    return _parse_reports(raw, default_tz=default_tz, limits=limits)


def build_validated_bundle(report: Report, labels: LabelSet, *, recorded: datetime | None = None,
                           profile: OutputProfile = STANDALONE) -> bytes:
    """Build, validate (fhir.resources) and serialise one bundle. Raises :class:`InvalidResource` on a bug,
    :class:`Unpublishable` for a report the profile cannot write (no patient identifier, ...)."""
    bundle = build_bundle_shared(report, labels, recorded=recorded, profile=profile)
    validate_bundle(bundle)
    return bundle_bytes(bundle)


def convert_reports(
    reports: list[Report], outcomes: list[LabelSet | Skip], *, recorded: datetime | None = None,
    profile: OutputProfile = STANDALONE,
) -> list[Converted | Skipped]:
    """One result per report: a validated bundle, or the skip that publishes nothing. ``recorded`` is the labeling
    time for Provenance.recorded (the input record's timestamp in `run`); None uses the message time (MSH-7).
    Raises :class:`Unpublishable` when any labeled report cannot be written under ``profile`` (the caller
    dead-letters the whole message: a message is never half-published)."""
    out: list[Converted | Skipped] = []
    for report, outcome in zip(reports, outcomes, strict=True):
        if isinstance(outcome, Skip):
            out.append(Skipped(key=report.accession_key, bundle_id=bundle_id(report), status=report.status,
                               reason=outcome.reason, signal=outcome.signal))
            continue
        ids = resolve_identifiers(report, profile)
        bundle = build_bundle_shared(report, outcome, recorded=recorded, profile=profile, ids=ids)
        validate_bundle(bundle)
        out.append(
            Converted(
                key=report.accession_key,
                bundle_id=bundle_id(report),
                status=report.status,
                bundle=bundle_bytes(bundle),
                labels=outcome,
                report_id=report.diagnostic_report_id,
                report_time=report.report_time.isoformat() if report.report_time else "",
                message_time=report.message_time.isoformat() if report.message_time else "",
                profile=profile.kind,
                identifier_fallbacks=ids.fallbacks,
            )
        )
    return out


async def label_reports(
    reports: list[Report], labeler: Labeler, *, rules: ScopeRules | None = None
) -> list[LabelSet | LabelerError | Skip]:
    """Triage, then label the reports that need it in one batch; one outcome per report (a LabelSet, that report's
    typed labeler error, or the :class:`Skip` that keeps it from any labeler). A cancelled report (status X) is not
    labeled: all its findings are retired, so it gets an empty LabelSet naming the labeler. Whole-batch failures
    (LabelerUnavailable) propagate."""
    out: list[LabelSet | LabelerError | Skip] = []
    to_label: list[int] = []
    for i, report in enumerate(reports):
        skip = triage(report, rules)
        if skip is not None:
            out.append(skip)
            continue
        out.append(LabelSet(labeler=labeler.info))
        if report.status != "X":
            to_label.append(i)
    outcomes = await labeler.label_batch_detailed([reports[i].text for i in to_label]) if to_label else []
    for i, outcome in zip(to_label, outcomes, strict=True):
        out[i] = outcome
    return out


async def convert_message(
    raw: bytes,
    labeler: Labeler,
    *,
    default_tz: tzinfo = timezone.utc,
    limits: ParseLimits = DEFAULT_LIMITS,
    rules: ScopeRules | None = None,
    recorded: datetime | None = None,
    profile: OutputProfile = STANDALONE,
) -> list[Converted | Skipped]:
    """One message -> one :class:`Converted` (or :class:`Skipped`) per report. Raises :class:`MessageRejected` for
    bad input, :class:`Unpublishable` for a report the profile cannot write, and the labeler's errors
    (LabelerUnavailable for the batch; AnswerInvalid / ReportTooLong for a report) so the caller can retry or
    dead-letter without losing the message."""
    reports = parse_reports(raw, default_tz=default_tz, limits=limits)
    outcomes = await label_reports(reports, labeler, rules=rules)
    for outcome in outcomes:
        if isinstance(outcome, LabelerError):
            raise outcome
    return convert_reports(reports, outcomes, recorded=recorded, profile=profile)  # type: ignore[arg-type]
