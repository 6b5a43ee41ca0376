"""One poll batch of input records -> per-record outcome (output records, a dead letter, or a skip).

Parsing and FHIR building reuse the offline pipeline's pure functions (connector.pipeline), so a Bundle
published here is byte-identical to ``radlabel convert`` for the same message and labeler. What this module
adds is batching: the reports of all records in a batch are labeled together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from mappings.labels import AnswerInvalid, Labeler, LabelerError, LabelSet, ReportTooLong
from mappings.scope import ScopeRules

from connector import pipeline
from connector.settings import FhirSettings, HL7Settings, KafkaSettings
from connector.stream import dlq
from connector.stream.dlq import DeadLetter, SourceCoords

CONTENT_TYPE_FHIR = b"application/fhir+json"

# MessageRejected reason codes that mean "a well-formed message that is simply not for us" (KafkaSettings.non_oru
# decides between skipping and dead-lettering them). Everything else the parser rejects is a dead letter.
NOT_FOR_US = frozenset({"not-oru"})


@dataclass(frozen=True)
class InputRecord:
    """The parts of a Kafka ConsumerRecord the connector uses (plain data, so tests need no broker)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None = None
    # The record's Kafka headers (the sink reads the report-version facts the connector put there).
    headers: tuple[tuple[str, bytes], ...] = ()

    @property
    def source(self) -> SourceCoords:
        return SourceCoords(self.topic, self.partition, self.offset, self.timestamp_ms)

    @property
    def recorded(self) -> datetime | None:
        """Provenance.recorded for what this record yields: its Kafka timestamp, the same on every replay of it."""
        if self.timestamp_ms is None or self.timestamp_ms <= 0:
            return None
        return datetime.fromtimestamp(self.timestamp_ms / 1000, tz=timezone.utc)


@dataclass(frozen=True)
class OutputRecord:
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class Outcome:
    record: InputRecord
    outputs: list[OutputRecord] = field(default_factory=list)
    dead_letter: DeadLetter | None = None
    # Reason codes of what publishes nothing: the whole record (e.g. "not-oru") or each report skipped by triage
    # ("excluded:mr", "non-diagnostic:pending"). Committed like everything else.
    skipped: list[str] = field(default_factory=list)
    labels: list[LabelSet] = field(default_factory=list)
    # "patient" / "accession", once per published report whose identifier got a fallback system (no site rule named
    # its assigning authority): radlabel_identifier_fallback{kind}.
    identifier_fallbacks: list[str] = field(default_factory=list)


def _reject(record: InputRecord, reason: str, detail: str) -> DeadLetter:
    return DeadLetter(reason=reason, detail=detail, key=record.key, value=record.value or b"", source=record.source)


def parse_record(record: InputRecord, settings: KafkaSettings,
                 hl7: HL7Settings | None = None) -> list[pipeline.Report] | Outcome:
    """Reports in one record, or the outcome (dead letter / skip) when it holds none we can label."""
    hl7 = hl7 or HL7Settings()
    raw = record.value or b""
    if len(raw) > settings.max_record_bytes:
        return Outcome(record, dead_letter=_reject(record, dlq.OVERSIZE,
                                                   f"{len(raw)} bytes > max_record_bytes {settings.max_record_bytes}"))
    try:
        messages = pipeline.split_messages(raw)
        if not messages:
            return Outcome(record, dead_letter=_reject(record, dlq.EMPTY, "no HL7 message in record"))
        tz, limits = hl7.tz(), hl7.limits()
        reports = [report for message in messages
                   for report in pipeline.parse_reports(message, default_tz=tz, limits=limits)]
    except pipeline.MessageRejected as exc:
        if exc.reason in NOT_FOR_US and settings.non_oru == "skip":
            return Outcome(record, skipped=[exc.reason])
        return Outcome(record, dead_letter=_reject(record, exc.reason, exc.detail))
    except Exception as exc:  # noqa: BLE001 - a parser bug must not stop the stream; the raw bytes are kept
        return Outcome(record, dead_letter=_reject(record, dlq.CONVERSION_ERROR, f"parse: {type(exc).__name__}"))
    if not reports:
        return Outcome(record, dead_letter=_reject(record, dlq.EMPTY, "no report in message"))
    return reports


def output_headers(record: InputRecord, report: pipeline.Report, item: pipeline.Converted) -> list[tuple[str, bytes]]:
    """Headers of one output record: where it came from, who labeled it, and the report version's facts
    (report-id, report-status, report-time, message-time, fhir-profile; docs/HL7_FHIR.md "Output record")."""
    info = item.labels.labeler
    headers = [
        ("content-type", CONTENT_TYPE_FHIR),
        ("hl7-message-control-id", str(report.message_control_id or "").encode()),
        *record.source.headers(),
        ("bundle-id", item.bundle_id.encode()),
        ("labeler", info.name.encode()),
        ("labeler-version", info.version.encode()),
        ("fallback", b"true" if item.labels.fallback else b"false"),
        *pipeline.version_headers(item),
    ]
    if info.model:
        headers.append(("model", info.model.encode()))
    return headers


def _label_error_reason(error: LabelerError) -> str:
    if isinstance(error, ReportTooLong):
        return dlq.REPORT_TOO_LONG
    if isinstance(error, AnswerInvalid):
        return dlq.LABEL_INVALID
    return dlq.LABEL_FAILED


def build_outputs(record: InputRecord, reports: Sequence[pipeline.Report],
                  results: Sequence[LabelSet | LabelerError | pipeline.Skip],
                  profile: pipeline.OutputProfile = pipeline.STANDALONE) -> Outcome:
    """All of a record's labeled reports become Bundles, or the whole record is dead-lettered: a message is never
    half-published, so replaying its dead letter cannot duplicate anything. Skipped reports publish nothing."""
    for result in results:
        if isinstance(result, LabelerError):
            return Outcome(record, dead_letter=_reject(record, _label_error_reason(result), type(result).__name__))
    try:
        converted = pipeline.convert_reports(list(reports), list(results),  # type: ignore[arg-type]
                                             recorded=record.recorded, profile=profile)
    except pipeline.Unpublishable as exc:  # no patient identifier, or an authority a strict site has not mapped
        return Outcome(record, dead_letter=_reject(record, exc.reason, exc.detail))
    except Exception as exc:  # noqa: BLE001 - as in parse_record: keep the bytes, keep the stream moving
        return Outcome(record, dead_letter=_reject(record, dlq.CONVERSION_ERROR, f"fhir: {type(exc).__name__}"))
    outcome = Outcome(record)
    for report, item in zip(reports, converted, strict=True):
        if isinstance(item, pipeline.Skipped):
            outcome.skipped.append(item.reason)
            continue
        outcome.outputs.append(OutputRecord(key=item.key.encode(), value=item.bundle,
                                            headers=output_headers(record, report, item)))
        outcome.labels.append(item.labels)
        outcome.identifier_fallbacks.extend(item.identifier_fallbacks)
    return outcome


# `run` writes into a hospital's records: unless fhir.profile says otherwise, it references the Patient and
# DiagnosticReport the site's own feeds wrote instead of writing its own (docs/HL7_FHIR.md "Output profiles").
RUN_DEFAULT_PROFILE = "enrich"


async def process_batch(records: Sequence[InputRecord], labeler: Labeler,
                        settings: KafkaSettings, hl7: HL7Settings | None = None,
                        rules: ScopeRules | None = None, fhir: FhirSettings | None = None) -> list[Outcome]:
    """Outcomes in input order. Raises LabelerUnavailable (nothing published) when the labeler is down."""
    profile = (fhir or FhirSettings()).output_profile(RUN_DEFAULT_PROFILE)
    parsed = [parse_record(record, settings, hl7) for record in records]
    reports = [report for item in parsed if not isinstance(item, Outcome) for report in item]
    # One labeler pass over every report of the batch (the offline pipeline's own rules: out-of-scope and
    # non-diagnostic reports and cancellations are not sent to the labeler).
    results = await pipeline.label_reports(reports, labeler, rules=rules) if reports else []
    outcomes: list[Outcome] = []
    cursor = 0
    for record, item in zip(records, parsed, strict=True):
        if isinstance(item, Outcome):
            outcomes.append(item)
            continue
        outcomes.append(build_outputs(record, item, results[cursor:cursor + len(item)], profile))
        cursor += len(item)
    return outcomes
