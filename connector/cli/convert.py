"""radlabel convert: files of HL7 v2 ORU^R01 messages -> one FHIR transaction Bundle file per report.

Writes DIR/<bundle id>.json (the canonical bytes the Kafka connector would publish) and, for every message that
cannot be converted, DIR/dead-letter/<n>.json with the raw bytes, so nothing is lost. A report that is not a chest
radiograph, or whose text asserts nothing, writes nothing and is counted in the summary ("skipped",
"skipped_by_reason"). Exit code 0 when it ran, even if some messages were rejected.

Provenance.recorded (when the labeling happened) must be stable for byte-identical reruns: `run` uses each input
record's Kafka timestamp; `convert` uses --recorded-at when given, else each message's MSH-7 (when the sender built
the message: what the Kafka timestamp is when an interface engine publishes as it sends).
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from mappings.labels import Labeler, LabelerError
from mappings.scope import ScopeRules

from connector.cli.label import ApiOpt, ConfigOpt, EndpointOpt, LabelerOpt, ModelOpt, labeler_settings, make_labeler
from connector.pipeline import (
    InvalidResource,
    MessageRejected,
    Skipped,
    convert_reports,
    label_reports,
    parse_reports,
    split_messages,
)
from connector.settings import load_settings

BATCH_REPORTS = 32


class _DeadLetters:
    def __init__(self, out: Path) -> None:
        self.folder = out / "dead-letter"
        self.next = 1 + max((int(p.stem) for p in self.folder.glob("*.json") if p.stem.isdigit()), default=0)
        self.reasons: Counter[str] = Counter()

    def write(self, reason: str, detail: str, source: Path, raw: bytes) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        record = {
            "reason": reason,
            "detail": detail,
            "source": str(source),
            "raw_base64": base64.b64encode(raw).decode("ascii"),
        }
        (self.folder / f"{self.next}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        self.next += 1
        self.reasons[reason] += 1


class Summary:
    def __init__(self) -> None:
        self.messages = 0
        self.bundles = 0
        self.skipped: Counter[str] = Counter()


async def convert_files(files: list[Path], out: Path, labeler: Labeler, *, rules: ScopeRules | None = None,
                        recorded: datetime | None = None) -> tuple[Summary, _DeadLetters]:
    """Returns the counts (messages converted, bundles written, reports skipped by reason) and the dead letters."""
    out.mkdir(parents=True, exist_ok=True)
    dead = _DeadLetters(out)
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
                converted = convert_reports(message_reports, labels, recorded=recorded)  # type: ignore[arg-type]
            except InvalidResource as exc:
                # A mapping bug, not bad input: keep the message and say so loudly.
                dead.write("invalid-fhir", str(exc), source, raw)
                continue
            for item in converted:
                if isinstance(item, Skipped):
                    summary.skipped[item.reason] += 1
                    continue
                (out / f"{item.bundle_id}.json").write_bytes(item.bundle)
                summary.bundles += 1
            summary.messages += 1
        pending.clear()

    for source in files:
        for raw in split_messages(source.read_bytes()):
            try:
                reports = parse_reports(raw)
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
    labeler: LabelerOpt = "rules",
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    api: ApiOpt = "openai",
    config: ConfigOpt = None,
    recorded_at: Annotated[
        Optional[datetime],
        typer.Option("--recorded-at", formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"],
                     help="labeling time for Provenance.recorded (ISO 8601; default: each message's MSH-7)"),
    ] = None,
) -> None:
    """Convert HL7 v2 ORU^R01 files (MLLP-framed or plain ER7) to FHIR R4 transaction Bundles."""
    settings = labeler_settings(labeler, model, endpoint, api, config)
    rules = load_settings(config).scope.rules()
    if recorded_at is not None and recorded_at.tzinfo is None:
        recorded_at = recorded_at.replace(tzinfo=timezone.utc)

    async def run() -> tuple[Summary, _DeadLetters]:
        async with make_labeler(settings) as backend:
            return await convert_files(files, out, backend, rules=rules, recorded=recorded_at)

    try:
        counts, dead = asyncio.run(run())
    except LabelerError as exc:
        # The whole labeler is down (e.g. model server unreachable): stop rather than dead-letter every message.
        typer.echo(f"labeler unavailable ({type(exc).__name__}); bundles written so far are kept", err=True)
        raise typer.Exit(code=2) from None
    summary = {
        "converted": counts.messages,
        "bundles": counts.bundles,
        "skipped": sum(counts.skipped.values()),
        "skipped_by_reason": dict(sorted(counts.skipped.items())),
        "rejected": sum(dead.reasons.values()),
        "rejected_by_reason": dict(sorted(dead.reasons.items())),
        "out": str(out),
    }
    typer.echo(json.dumps(summary))


def register(app: typer.Typer) -> None:
    app.command("convert")(convert)
