"""radlabel convert: files of HL7 v2 ORU^R01 messages -> one FHIR transaction Bundle file per report.

Writes DIR/<bundle id>.json (the canonical bytes the Kafka connector would publish, under the same fhir.profile),
DIR/index.jsonl (one line per bundle written, in order: its file, record key and the report-version facts `run` puts
in Kafka headers: report-id, report-status, report-time, message-time, fhir-profile) and, for every message that
cannot be converted, DIR/dead-letter/<n>.json with the raw bytes, so nothing is lost. The profile is standalone
unless --profile or fhir.profile says enrich (docs/HL7_FHIR.md "Output profiles"). A report that is not a chest
radiograph, or whose text asserts nothing, writes nothing and is counted in the summary ("skipped",
"skipped_by_reason"): that is not a rejection. Exit code 0 when it ran, even if some messages were rejected; with
--fail-on-reject, 3 when any was (README "Exit codes").

Provenance.recorded (when the labeling happened) must be stable for byte-identical reruns: `run` uses each input
record's Kafka timestamp; `convert` uses --recorded-at when given, else each message's MSH-7 (when the sender built
the message: what the Kafka timestamp is when an interface engine publishes as it sends).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from connector.cli.errors import ExitCode, labeler_unavailable
from connector.cli.label import ApiOpt, ConfigOpt, EndpointOpt, LabelerOpt, ModelOpt, command_settings, make_labeler
from connector.dead_letter_files import DeadLetterFolder
from connector.settings import HL7Settings

if TYPE_CHECKING:  # the pipeline (fhir.resources) is imported when a conversion runs: `radlabel --help` stays fast
    from mappings.labels import Labeler
    from mappings.scope import ScopeRules

    from connector.fhir.identifiers import OutputProfile

BATCH_REPORTS = 32


class Summary:
    """What a conversion produced: messages converted, bundles written, reports skipped (by reason)."""

    def __init__(self) -> None:
        self.messages = 0
        self.bundles = 0
        self.skipped: Counter[str] = Counter()
        self.identifier_fallbacks: Counter[str] = Counter()  # patient / accession: unmapped assigning authority


async def convert_files(
    files: list[Path], out: Path, labeler: Labeler, hl7: HL7Settings | None = None, *,
    rules: ScopeRules | None = None, recorded: datetime | None = None, profile: OutputProfile | None = None,
) -> tuple[Summary, DeadLetterFolder]:
    """Returns the counts and the dead letters. Every input file ends up in at least one of them: a file that holds
    no message at all (empty, blank) is an "empty" dead letter, not a silent skip; a report out of scope or with
    text that asserts nothing is a counted skip."""
    from mappings.labels import LabelerError

    from connector.pipeline import (
        STANDALONE,
        InvalidResource,
        MessageRejected,
        Skipped,
        Unpublishable,
        convert_reports,
        label_reports,
        parse_reports,
        split_messages,
        version_headers,
    )

    profile = profile or STANDALONE
    hl7 = hl7 or HL7Settings()
    tz, limits = hl7.tz(), hl7.limits()
    out.mkdir(parents=True, exist_ok=True)
    dead = DeadLetterFolder(out)
    summary = Summary()
    pending: list[tuple[Path, bytes, list]] = []  # (source, raw message, its reports)

    async def flush() -> None:
        if not pending:
            return
        reports = [r for _, _, rs in pending for r in rs]
        outcomes = iter(await label_reports(reports, labeler, rules=rules))
        for source, raw, message_reports in pending:
            labels = [next(outcomes) for _ in message_reports]
            failure = next((x for x in labels if isinstance(x, LabelerError)), None)
            if failure is not None:
                dead.write("label-failed", f"labeler answered {type(failure).__name__}", source, raw)
                continue
            try:
                converted = convert_reports(message_reports, labels, recorded=recorded,  # type: ignore[arg-type]
                                            profile=profile)
            except InvalidResource as exc:
                # A mapping bug, not bad input: keep the message and say so loudly.
                dead.write("invalid-fhir", str(exc), source, raw)
                continue
            except Unpublishable as exc:  # no patient identifier; an authority a strict site has not mapped
                dead.write(exc.reason, exc.detail, source, raw)
                continue
            lines = []
            for item in converted:
                if isinstance(item, Skipped):
                    summary.skipped[item.reason] += 1
                    continue
                (out / f"{item.bundle_id}.json").write_bytes(item.bundle)
                headers = {name: value.decode("ascii") for name, value in version_headers(item)}
                lines.append(json.dumps({"file": f"{item.bundle_id}.json", "key": item.key,
                                         "bundle-id": item.bundle_id, **headers}, sort_keys=True) + "\n")
                summary.identifier_fallbacks.update(item.identifier_fallbacks)
                summary.bundles += 1
            if lines:
                with (out / "index.jsonl").open("a", encoding="utf-8") as index:
                    index.writelines(lines)
            summary.messages += 1
        pending.clear()

    for source in files:
        data = source.read_bytes()
        messages = split_messages(data)
        if not messages:
            dead.write("empty", "file holds no HL7 message", source, data)
        for raw in messages:
            try:
                reports = parse_reports(raw, default_tz=tz, limits=limits)
            except MessageRejected as exc:
                dead.write(exc.reason, exc.detail, source, raw)
                continue
            pending.append((source, raw, reports))
            if sum(len(rs) for _, _, rs in pending) >= BATCH_REPORTS:
                await flush()
    await flush()
    return summary, dead


def convert(
    files: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="files of HL7 v2 messages")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    labeler: LabelerOpt = None,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    api: ApiOpt = None,
    config: ConfigOpt = None,
    fail_on_reject: Annotated[bool, typer.Option(
        "--fail-on-reject", help="exit 3 when any message was dead-lettered (for pipelines)")] = False,
    profile: Annotated[Optional[str], typer.Option(
        "--profile", help="standalone (default: the bundle writes Patient and DiagnosticReport) | enrich (references "
                          "the hospital's own by identifier); fhir.profile")] = None,
    recorded_at: Annotated[
        Optional[datetime],
        typer.Option("--recorded-at", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
                     help="labeling time for Provenance.recorded (ISO 8601, UTC when no offset; "
                          "default: each message's MSH-7)"),
    ] = None,
) -> None:
    """Convert HL7 v2 ORU^R01 files (MLLP-framed or plain ER7) to FHIR R4 transaction Bundles."""
    from mappings.labels import LabelerError

    everything = command_settings(labeler, model, endpoint, api, config, profile=profile)
    settings, hl7 = everything.labeler, everything.hl7
    output = everything.fhir.output_profile("standalone")
    rules = everything.scope.rules()
    if recorded_at is not None and recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=timezone.utc)

    async def run() -> tuple[Summary, DeadLetterFolder]:
        async with make_labeler(settings) as backend:
            return await convert_files(files, out, backend, hl7, rules=rules, recorded=recorded_at, profile=output)

    try:
        counts, dead = asyncio.run(run())
    except LabelerError as exc:
        # The whole labeler is down (e.g. model server unreachable): stop rather than dead-letter every message.
        raise labeler_unavailable(settings, exc, "bundles written so far are kept") from None
    summary = {
        "converted": counts.messages,
        "bundles": counts.bundles,
        "skipped": sum(counts.skipped.values()),
        "skipped_by_reason": dict(sorted(counts.skipped.items())),
        "identifier_fallbacks": dict(sorted(counts.identifier_fallbacks.items())),
        "rejected": sum(dead.reasons.values()),
        "rejected_by_reason": dict(sorted(dead.reasons.items())),
        "out": str(out),
    }
    typer.echo(json.dumps(summary))
    if fail_on_reject and summary["rejected"]:
        raise typer.Exit(code=ExitCode.REJECTED)


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
