"""radlabel audit export | diff | report: what the labeler said, on which report, with which model, and what a
model change would change (docs/AUDIT.md)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from connector.cli.errors import CliError, ExitCode, usage, wrap_commands

audit_app = typer.Typer(no_args_is_help=True, help="Audit published labels: export, diff, report (docs/AUDIT.md).")

ConfigOpt = Annotated[Optional[Path], typer.Option("--config", help="YAML settings file")]


def _salt(settings: Any) -> str:
    secret = settings.audit.salt
    if secret is None or not secret.get_secret_value():
        raise usage("audit.salt is not set: the patient hash needs a secret salt (set RADLABEL_AUDIT__SALT, or "
                    "audit.salt in the --config file; keep it the same for exports you want to join)")
    return secret.get_secret_value()


async def _read_topics(kafka: Any, topic: str, dead_letter_topic: str | None, window_spec: Any, hasher: Any) -> Any:
    from aiokafka import AIOKafkaConsumer

    from connector.audit.export import Export
    from connector.audit.sources import event, topic_records
    from connector.stream.connect import start_with_retry
    from connector.stream.kafka_config import client_kwargs
    from connector.stream.window import WindowSpec, resolve

    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, fetch_max_bytes=64 * 1_048_576,
                                max_partition_fetch_bytes=32 * 1_048_576, **client_kwargs(kafka))
    await start_with_retry(consumer.start, address=kafka.bootstrap_servers, retry_s=kafka.connect_retry_s)
    try:
        window = await resolve(consumer, topic, window_spec)
        out = Export()
        async for record in topic_records(consumer, window):
            out.add(record, hasher)
        out.finish()
        if dead_letter_topic:
            # Offsets name the output topic's partitions: the dead letters are then read whole.
            dlq_spec = WindowSpec(window_spec.start_ms, window_spec.end_ms) if window_spec.offsets is None \
                else WindowSpec()
            dlq_window = await resolve(consumer, dead_letter_topic, dlq_spec)
            async for record in topic_records(consumer, dlq_window):
                out.events.append(event("dead-letter", record.headers.get("dlq-reason", "unknown"), record.headers))
        return out
    finally:
        await consumer.stop()


def export_command(
    out: Annotated[Path, typer.Option("--out", help="the table: FILE.csv or FILE.parquet")],
    folder: Annotated[Optional[Path], typer.Option(
        "--folder", help="a folder of Bundles written by `radlabel convert` or `radlabel replay --to-files`")] = None,
    topic: Annotated[Optional[str], typer.Option(
        "--topic", help="output topic to read (default with --bootstrap-servers: kafka.output_topic)")] = None,
    bootstrap_servers: Annotated[Optional[str], typer.Option("--bootstrap-servers", "-b")] = None,
    from_: Annotated[Optional[str], typer.Option("--from", help="window start, ISO 8601 (record timestamps)")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="window end (exclusive), ISO 8601")] = None,
    offsets: Annotated[Optional[str], typer.Option(
        "--offsets",
        help="window by offsets: PARTITION=START-END,... (END exclusive, either side may be empty)")] = None,
    dead_letter_topic: Annotated[Optional[str], typer.Option(
        "--dead-letter-topic", help="also read dead letters from this topic into --events-out")] = None,
    events_out: Annotated[Optional[Path], typer.Option(
        "--events-out", help="what published nothing (dead letters, skips) as FILE.csv or FILE.parquet")] = None,
    config: ConfigOpt = None,
) -> None:
    """Published label Bundles -> one row per report version x observation (CSV or Parquet)."""
    from connector.audit.export import export_records
    from connector.audit.rows import COLUMNS, INT_COLUMNS, PatientHasher
    from connector.audit.sources import EVENT_COLUMNS, folder_events, folder_records
    from connector.audit.table import TableError, check_suffix, write_table
    from connector.settings import load_settings
    from connector.stream.connect import BrokerUnavailable
    from connector.stream.window import WindowError, spec

    for path in (out, events_out):
        if path is not None:
            try:
                check_suffix(path)
            except TableError as exc:
                raise usage(str(exc)) from None
    if (folder is None) == (topic is None and bootstrap_servers is None):
        raise usage("give either --folder DIR or --topic/--bootstrap-servers")
    settings = load_settings(config, kafka={"bootstrap_servers": bootstrap_servers})
    hasher = PatientHasher(_salt(settings))
    if folder is not None:
        if from_ or to or offsets or dead_letter_topic:
            raise usage("--from/--to/--offsets/--dead-letter-topic read topics; a --folder is read whole")
        if not folder.is_dir():
            raise usage(f"--folder {folder}: not a folder")
        result = export_records(folder_records(folder), hasher, folder_events(folder))
    else:
        try:
            window_spec = spec(from_, to, offsets)
        except WindowError as exc:
            raise usage(str(exc)) from None
        try:
            result = asyncio.run(_read_topics(settings.kafka, topic or settings.kafka.output_topic,
                                              dead_letter_topic, window_spec, hasher))
        except BrokerUnavailable as exc:
            raise CliError(str(exc), ExitCode.UNAVAILABLE) from None
        except WindowError as exc:
            raise usage(str(exc)) from None
    write_table(result.rows, COLUMNS, out, INT_COLUMNS)
    summary = {**result.summary(), "out": str(out)}
    if events_out is not None:
        write_table(result.events, EVENT_COLUMNS, events_out, ("source_partition", "source_offset",
                                                               "source_timestamp"))
        summary["events_out"] = str(events_out)
    typer.echo(json.dumps(summary))


def diff_command(
    a: Annotated[Path, typer.Argument(help="audit export A (the reference, e.g. the live model)")],
    b: Annotated[Path, typer.Argument(help="audit export B (e.g. the candidate)")],
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    name_a: Annotated[Optional[str], typer.Option("--name-a", help="label for A (default: file name)")] = None,
    name_b: Annotated[Optional[str], typer.Option("--name-b", help="label for B (default: file name)")] = None,
    truth: Annotated[Optional[Path], typer.Option(
        "--truth", help="truth label CSV (id + 14 observations): score both with `radlabel evaluate`")] = None,
    id_column: Annotated[str, typer.Option(
        "--id-column", help="which export column the truth ids are: accession | report_id | bundle_id")] = "accession",
    mode: Annotated[str, typer.Option("--mode", help="evaluate mode: weighted | positive-only")] = "weighted",
    bootstrap: Annotated[int, typer.Option("--bootstrap", min=100, help="bootstrap resamples (with --truth)")] = 1000,
) -> None:
    """Two exports of the same report versions -> 4x4 transitions, agreement, kappa, changed report ids."""
    from connector.audit.diff import ID_COLUMNS, DiffError, diff, evaluate_against, write_diff
    from connector.audit.table import TableError, read_table
    from connector.evaluate.defaults import MODES
    from connector.evaluate.io import LabelFileError

    if id_column not in ID_COLUMNS:
        raise usage(f"--id-column must be one of {', '.join(ID_COLUMNS)}")
    if mode not in MODES:
        raise usage(f"--mode must be one of {', '.join(MODES)}")
    name_a, name_b = name_a or a.stem, name_b or b.stem
    if name_a == name_b:
        raise usage(f"both exports are called {name_a!r}: give --name-a and --name-b")
    try:
        frame_a, frame_b = read_table(a), read_table(b)
        result = diff(frame_a, frame_b, name_a, name_b)
        if truth is not None:
            result.evaluation = evaluate_against(truth, frame_a, frame_b, name_a, name_b, out, id_column, mode,
                                                 bootstrap)
    except (TableError, DiffError, LabelFileError) as exc:
        raise CliError(str(exc), ExitCode.REJECTED) from None
    paths = write_diff(result, out)
    typer.echo(json.dumps({
        "compared": result.common_versions, "changed_report_versions": result.changed_reports,
        "changed_labels": len(result.changed), "only_in_a": result.only_a, "only_in_b": result.only_b,
        "kappa": {d.observation: (None if d.kappa != d.kappa else round(d.kappa, 4)) for d in result.observations},
        **({"mean_weighted_f1": {r.name: round(r.mean_weighted_f1, 4) for r in result.evaluation.labelers}}
           if result.evaluation is not None else {}),
        "out": {k: str(v) for k, v in paths.items()},
    }))


def report_command(
    labels: Annotated[Path, typer.Option("--labels", help="an audit export (CSV or Parquet)")],
    out: Annotated[Path, typer.Option("--out", help="the HTML file to write")],
    events: Annotated[Optional[Path], typer.Option("--events", help="the events table of `audit export`")] = None,
    compare: Annotated[Optional[list[Path]], typer.Option(
        "--compare", help="two exports to compare (give it twice: A then B), e.g. live vs candidate")] = None,
    truth: Annotated[Optional[Path], typer.Option(
        "--truth", help="with --compare: score both against this truth CSV (radlabel evaluate)")] = None,
    id_column: Annotated[str, typer.Option("--id-column", help="accession | report_id | bundle_id")] = "accession",
    period: Annotated[str, typer.Option("--period", help="day | week | month")] = "week",
    title: Annotated[str, typer.Option("--title", help="page title")] = "radlabel audit report",
) -> None:
    """One self-contained HTML page: prevalence, fallback/dead-letter/skip rates, model versions, a comparison."""
    from connector.audit.diff import DiffError, diff, evaluate_against
    from connector.audit.html import PERIODS, ReportInputs, render
    from connector.evaluate.io import LabelFileError
    from connector.audit.rows import COLUMNS
    from connector.audit.sources import EVENT_COLUMNS
    from connector.audit.table import TableError, read_table

    if period not in PERIODS:
        raise usage(f"--period must be one of {', '.join(PERIODS)}")
    if compare is not None and len(compare) != 2:
        raise usage("--compare takes exactly two exports (give it twice)")
    try:
        frame = read_table(labels, COLUMNS)
        event_frame = read_table(events, EVENT_COLUMNS) if events is not None else None
        pair, result = None, None
        if compare:
            pair = (read_table(compare[0], COLUMNS), read_table(compare[1], COLUMNS))
            names = (compare[0].stem, compare[1].stem)
            if names[0] == names[1]:
                names = (f"A:{names[0]}", f"B:{names[1]}")
            result = diff(pair[0], pair[1], *names)
            if truth is not None:
                import tempfile

                with tempfile.TemporaryDirectory() as scratch:
                    result.evaluation = evaluate_against(truth, pair[0], pair[1], *names, Path(scratch), id_column)
        elif truth is not None:
            raise usage("--truth scores a comparison: give --compare A --compare B as well")
    except (TableError, DiffError, LabelFileError) as exc:
        raise CliError(str(exc), ExitCode.REJECTED) from None
    if frame.empty:
        raise CliError(f"{labels}: the export has no rows", ExitCode.REJECTED)
    sources = [labels.name] + ([events.name] if events else []) + [p.name for p in compare or []]
    page = render(ReportInputs(frame, event_frame, result, pair, title, sources, period))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(page, encoding="utf-8")
    typer.echo(json.dumps({"out": str(out), "bytes": len(page.encode("utf-8"))}))


def register(app: typer.Typer) -> None:
    audit_app.command("export")(export_command)
    audit_app.command("diff")(diff_command)
    audit_app.command("report")(report_command)
    wrap_commands(audit_app)
    app.add_typer(audit_app, name="audit")
