"""radlabel evaluate: score label CSVs against a truth CSV with CheXbert's protocol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from connector.cli.errors import CliError, ExitCode
from connector.evaluate.defaults import DEFAULT_RESAMPLES, DEFAULT_SEED, MODES


def _parse_pred(value: str) -> tuple[str, Path]:
    name, sep, path = value.partition("=")
    if not sep or not name.strip() or not path.strip():
        raise typer.BadParameter(f"expected NAME=PATH, got {value!r}")
    return name.strip(), Path(path.strip())


def evaluate_command(
    truth: Annotated[Path, typer.Option("--truth", help="truth label CSV (id + 14 observation columns)")],
    pred: Annotated[
        list[str],
        typer.Option("--pred", help="NAME=PRED.csv; repeat for several labelers (the first is the reference)"),
    ],
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    mode: Annotated[
        str, typer.Option("--mode", help="weighted (4-class truth) or positive-only (e.g. IU MeSH codes)")
    ] = "weighted",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=100, help="bootstrap resamples")] = DEFAULT_RESAMPLES,
    seed: Annotated[int, typer.Option("--seed", help="bootstrap seed")] = DEFAULT_SEED,
) -> None:
    """Per-observation F1 (positive/negative/uncertain), weighted F1, kappa, bootstrap CIs, paired tests and figures."""
    from connector.evaluate.io import LabelFileError
    from connector.evaluate.report import evaluate, write_outputs

    if mode not in MODES:
        raise typer.BadParameter(f"--mode must be one of {', '.join(MODES)}")
    preds = [_parse_pred(p) for p in pred]
    try:
        result = evaluate(truth, preds, mode=mode, resamples=bootstrap, seed=seed)  # type: ignore[arg-type]
    except (LabelFileError, ValueError) as exc:
        raise CliError(str(exc), ExitCode.REJECTED) from None
    paths = write_outputs(result, out)
    typer.echo(f"{result.n_reports} reports, mode {mode}")
    for r in result.labelers:
        typer.echo(f"  {r.name:<24} mean F1 {r.mean_weighted_f1:.4f}  95% CI {r.ci[0]:.4f}-{r.ci[1]:.4f}")
    typer.echo("wrote " + ", ".join(str(p) for p in paths.values()))


def register(app: typer.Typer) -> None:
    app.command("evaluate")(evaluate_command)
