"""radlabel label: report texts (CSV or JSONL) -> CheXpert-encoded labels CSV, with any labeler backend."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from mappings.vocabulary import OBSERVATIONS

from connector.cli.errors import CliError, ExitCode, labeler_unavailable
from connector.cli.tables import (
    InputFileError,
    ReportRow,
    atomic_csv,
    neutralise,
    read_reports,
    remove_stale,
    write_failed,
)
from connector.settings import LabelerSettings, Settings, SettingsError, load_settings

if TYPE_CHECKING:  # imported when a command runs: `radlabel --help` stays fast
    from mappings.labels import Labeler, LabelerError, LabelSet

PROGRESS_THRESHOLD = 100


LabelerOpt = Annotated[
    Optional[str], typer.Option("--labeler", help="rules | llm  [default: setting labeler.kind, rules]")
]
ModelOpt = Annotated[Optional[Path], typer.Option("--model", help="local model directory (in-process llm)")]
EndpointOpt = Annotated[Optional[str], typer.Option("--endpoint", help="model server base URL (llm)")]
ApiOpt = Annotated[
    Optional[str], typer.Option("--api", help="openai | tgi (with --endpoint)  [default: setting labeler.api, openai]")
]
ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML settings file")]


_FLAG_NAMES = {("labeler", "kind"): "option --labeler", ("labeler", "model"): "option --model",
               ("labeler", "endpoint"): "option --endpoint", ("labeler", "api"): "option --api",
               ("fhir", "profile"): "option --profile"}


def command_settings(
    labeler: str | None, model: Path | None, endpoint: str | None, api: str | None, config: Path | None = None,
    *, profile: str | None = None,
) -> Settings:
    """Flags > RADLABEL_* env > settings file > defaults, key by key: an option not given overrides nothing."""
    flags = {"kind": labeler, "model": str(model) if model is not None else None, "endpoint": endpoint, "api": api}
    settings = load_settings(config, flag_names=_FLAG_NAMES, labeler=flags, fhir={"profile": profile})
    if settings.labeler.kind == "rules" and (endpoint is not None or model is not None):
        # Never label with the rules when the user pointed at a model: that would look like the model's output.
        given = "--endpoint" if endpoint is not None else "--model"
        raise SettingsError(
            f"{given} is for the llm labeler but the labeler is rules (labeler.kind): add --labeler llm"
        )
    return settings


def labeler_settings(
    labeler: str | None, model: Path | None, endpoint: str | None, api: str | None, config: Path | None = None
) -> LabelerSettings:
    return command_settings(labeler, model, endpoint, api, config).labeler


def make_labeler(settings: LabelerSettings) -> Labeler:
    from connector.labelers import make_labeler as factory

    try:
        return factory(settings)
    except ValueError as exc:  # e.g. llm without a model or an endpoint
        raise SettingsError(str(exc)) from None


async def label_rows(
    rows: list[ReportRow], labeler: Labeler, batch_size: int, progress: bool
) -> list[LabelSet | LabelerError]:
    """Label every row; a text that asserts nothing gets an all-blank row without asking the labeler
    (mappings.labels.label_texts, the rule every radlabel path shares)."""
    from tqdm import tqdm

    from mappings.labels import label_texts

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
    labeler: LabelerOpt = None,
    model: ModelOpt = None,
    endpoint: EndpointOpt = None,
    api: ApiOpt = None,
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
        raise CliError(f"--scope must be none or text, not {scope[:20]!r}", ExitCode.USAGE)
    try:
        rows = read_reports(input)
    except InputFileError as exc:
        raise CliError(str(exc), ExitCode.REJECTED) from None
    settings = labeler_settings(labeler, model, endpoint, api, config)

    from mappings.labels import LabelerError, LabelSet
    from mappings.nondiagnostic import non_diagnostic_reason
    from mappings.scope import StudyFacts, default_rules

    in_scope: list[bool] | None = None
    if scope == "text":
        rules = default_rules()
        in_scope = [rules.decide(StudyFacts(report_text=row.report)).in_scope for row in rows]
    to_label = [row for i, row in enumerate(rows) if in_scope is None or in_scope[i]]

    async def run() -> list[LabelSet | LabelerError]:
        async with make_labeler(settings) as backend:
            labeled = iter(await label_rows(to_label, backend, batch_size,
                                            progress=len(to_label) > PROGRESS_THRESHOLD))
            info = backend.info
        return [next(labeled) if in_scope is None or in_scope[i] else LabelSet(labeler=info)
                for i in range(len(rows))]

    try:
        results = asyncio.run(run())
    except LabelerError as exc:
        stale = " (the older output there was removed: it is not this run's)" if remove_stale(output) else ""
        raise labeler_unavailable(settings, exc, f"nothing written{stale}") from None
    failed: dict[str, int] = {}
    failures: list[tuple[ReportRow, str]] = []
    non_diagnostic = 0
    with atomic_csv(output) as writer:
        writer.writerow(["id", *OBSERVATIONS, *(["in_scope"] if in_scope is not None else [])])
        for i, (row, result) in enumerate(zip(rows, results, strict=True)):
            if isinstance(result, LabelerError):
                # A failed report is left out, never written as all-blank (which would read as "nothing found").
                failed[type(result).__name__] = failed.get(type(result).__name__, 0) + 1
                failures.append((row, type(result).__name__))
                continue
            if (in_scope is None or in_scope[i]) and non_diagnostic_reason(row.report) is not None:
                non_diagnostic += 1
            writer.writerow([neutralise(row.id), *result.csv_row(),
                             *([int(in_scope[i])] if in_scope is not None else [])])
    retry = write_failed(output, failures)
    summary = {"labeled": len(rows) - sum(failed.values()), "failed": failed, "non_diagnostic": non_diagnostic,
               "output": str(output), "failed_reports": str(retry) if retry else None}
    if in_scope is not None:
        summary["out_of_scope"] = in_scope.count(False)
    typer.echo(json.dumps(summary))
    if failed:
        raise typer.Exit(code=ExitCode.PARTIAL)


def register(app: typer.Typer) -> None:
    app.command("label")(label)


__all__ = ["command_settings", "label", "labeler_settings", "make_labeler", "read_reports", "register"]
