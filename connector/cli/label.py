"""radlabel label: report texts (CSV or JSONL) -> CheXpert-encoded labels CSV, with any labeler backend."""

from __future__ import annotations

import asyncio
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Optional

import typer
from pydantic import BaseModel

from mappings.labels import Labeler, LabelerError, LabelSet, label_texts
from mappings.nondiagnostic import non_diagnostic_reason
from mappings.scope import StudyFacts, default_rules
from mappings.vocabulary import OBSERVATIONS

from connector.settings import LabelerSettings, load_settings

PROGRESS_THRESHOLD = 100


class ReportRow(BaseModel):
    id: str
    report: str


LabelerOpt = Annotated[str, typer.Option("--labeler", help="rules | llm")]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="local model directory (in-process llm)")]
EndpointOpt = Annotated[Optional[str], typer.Option("--endpoint", help="model server base URL (llm)")]
ApiOpt = Annotated[str, typer.Option("--api", help="openai | tgi (with --endpoint)")]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML settings file")]


def labeler_settings(
    labeler: str, model: Path | None, endpoint: str | None, api: str, config: Path | None = None
) -> LabelerSettings:
    """Settings file / RADLABEL_ env first, command-line options on top."""
    if labeler not in ("rules", "llm"):
        raise typer.BadParameter("--labeler must be rules or llm")
    if api not in ("openai", "tgi"):
        raise typer.BadParameter("--api must be openai or tgi")
    base = load_settings(config).labeler
    update: dict = {"kind": labeler}
    if model is not None:
        update["model"] = str(model)
    if endpoint is not None:
        update["endpoint"] = endpoint
        update["api"] = api
    return LabelerSettings.model_validate({**base.model_dump(), **update})


def make_labeler(settings: LabelerSettings) -> Labeler:
    from connector.labelers import make_labeler as factory

    try:
        return factory(settings)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def read_reports(path: Path) -> Iterator[ReportRow]:
    """CSV with columns id,report, or JSONL with id and report (or text)."""
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                record = json.loads(line)
                text = record.get("report", record.get("text"))
                if "id" not in record or text is None:
                    raise typer.BadParameter(f"{path}:{number}: JSONL records need id and report (or text)")
                yield ReportRow(id=str(record["id"]), report=str(text))
        return
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        fields = reader.fieldnames or []
        text_column = "report" if "report" in fields else "text" if "text" in fields else None
        if "id" not in fields or text_column is None:
            raise typer.BadParameter(f"{path}: CSV needs columns id and report")
        for row in reader:
            yield ReportRow(id=row["id"], report=row[text_column] or "")


async def label_rows(
    rows: list[ReportRow], labeler: Labeler, batch_size: int, progress: bool
) -> list[LabelSet | LabelerError]:
    """Label every row; a text that asserts nothing gets an all-blank row without asking the labeler
    (mappings.labels.label_texts, the rule every radlabel path shares)."""
    from tqdm import tqdm

    results: list[LabelSet | LabelerError] = []
    with tqdm(total=len(rows), disable=not progress, file=sys.stderr, unit="report") as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start : start + batch_size]
            results.extend(await label_texts(labeler, [row.report for row in batch]))
            bar.update(len(batch))
    return results


def label(
    input: Annotated[Path, typer.Option("--input", exists=True, dir_okay=False, help="CSV (id,report) or JSONL")],
    output: Annotated[Path, typer.Option("--output", help="labels CSV: id + 14 CheXpert columns (1/0/-1/blank)")],
    labeler: LabelerOpt = "rules",
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    api: ApiOpt = "openai",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1)] = 32,
    config: ConfigOpt = None,
    scope: Annotated[
        str,
        typer.Option("--scope", help="none: label every row | text: judge from the text alone whether each report "
                     "is a chest radiograph (in_scope column; other rows are left blank)"),
    ] = "none",
) -> None:
    """Label report texts; write CheXpert-encoded labels in dataset column order. A text that asserts nothing
    ("report pending", an empty cell) is written all blank: it never becomes No Finding."""
    if scope not in ("none", "text"):
        raise typer.BadParameter("--scope must be none or text")
    rows = list(read_reports(input))
    settings = labeler_settings(labeler, model, endpoint, api, config)
    in_scope: list[bool] | None = None
    if scope == "text":
        rules = default_rules()
        in_scope = [rules.decide(StudyFacts(report_text=row.report)).in_scope for row in rows]
    to_label = [row for i, row in enumerate(rows) if in_scope is None or in_scope[i]]

    async def run() -> list[LabelSet | LabelerError]:
        async with make_labeler(settings) as backend:
            labeled = iter(await label_rows(to_label, backend, batch_size, progress=len(to_label) > PROGRESS_THRESHOLD))
            info = backend.info
        return [next(labeled) if in_scope is None or in_scope[i] else LabelSet(labeler=info)
                for i in range(len(rows))]

    try:
        results = asyncio.run(run())
    except LabelerError as exc:
        typer.echo(f"labeler unavailable ({type(exc).__name__}); nothing written", err=True)
        raise typer.Exit(code=2) from None
    failed: dict[str, int] = {}
    output.parent.mkdir(parents=True, exist_ok=True)
    non_diagnostic = 0
    with output.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", *OBSERVATIONS, *(["in_scope"] if in_scope is not None else [])])
        for i, (row, result) in enumerate(zip(rows, results, strict=True)):
            if isinstance(result, LabelerError):
                # A failed report is left out, never written as all-blank (which would read as "nothing found").
                failed[type(result).__name__] = failed.get(type(result).__name__, 0) + 1
                continue
            if (in_scope is None or in_scope[i]) and non_diagnostic_reason(row.report) is not None:
                non_diagnostic += 1
            writer.writerow([row.id, *result.csv_row(), *([int(in_scope[i])] if in_scope is not None else [])])
    summary: dict = {"labeled": len(rows) - sum(failed.values()), "failed": failed,
                     "non_diagnostic": non_diagnostic, "output": str(output)}
    if in_scope is not None:
        summary["out_of_scope"] = in_scope.count(False)
    typer.echo(json.dumps(summary))
    if failed:
        raise typer.Exit(code=3)


def register(app: typer.Typer) -> None:
    app.command("label")(label)


__all__ = ["label", "labeler_settings", "make_labeler", "read_reports", "register"]
