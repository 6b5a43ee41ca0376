"""radlabel replay: re-label a window of the input topic with any labeler into another topic, or to files (docs/AUDIT.md
"Replay"). Same code path as `run` (connector/stream/replay.py)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from connector.cli.errors import CliError, ExitCode, usage


async def _resolve(settings: Any, want: Any, output_topic: str | None) -> Any:
    """The window's offsets, and a check that every topic the replay writes to exists (a missing one would only
    show as a produce timeout much later)."""
    from aiokafka import AIOKafkaConsumer

    from connector.stream.connect import start_with_retry
    from connector.stream.kafka_config import client_kwargs
    from connector.stream.window import resolve

    kafka = settings.kafka
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **client_kwargs(kafka))
    await start_with_retry(consumer.start, address=kafka.bootstrap_servers, retry_s=kafka.connect_retry_s)
    try:
        window = await resolve(consumer, kafka.input_topic, want)
        if output_topic is not None:
            existing = await consumer.topics()
            for topic in (output_topic, kafka.dead_letter_topic):
                if topic not in existing:
                    raise usage(f"topic {topic} does not exist: create it first (replay never creates topics)")
        return window
    finally:
        await consumer.stop()


async def _replay(settings: Any, labeler: Any, fallback: Any, window: Any, group: str, output_topic: str | None,
                  files: Path | None, http_port: int) -> dict:
    from tqdm import tqdm

    from connector.cli.stream import _install_signal_handlers
    from connector.stream.replay import Replay

    bar = tqdm(total=window.total, unit="rec", desc="replay", disable=None, dynamic_ncols=True)

    first = [True]

    def progress(done: int, total: int) -> None:
        if first[0] and not bar.disable:  # resumed: what earlier runs did is not this run's rate
            first[0] = False  # (tqdm's rate is (n - initial) / time since start_t)
            bar.initial = done
            bar.start_t = time.time()
        bar.n = done
        bar.refresh()

    app = Replay(settings, labeler, window, group_id=group, output_topic=output_topic, files=files,
                 fallback=fallback, http_port=http_port, progress=progress)
    _install_signal_handlers(app.request_stop)
    try:
        await app.run()
    finally:
        bar.close()
        await labeler.aclose()
        if fallback is not None:
            await fallback.aclose()
    return app.summary()


def replay(
    bootstrap_servers: Annotated[Optional[str], typer.Option("--bootstrap-servers", "-b", help="host:port")] = None,
    input_topic: Annotated[Optional[str], typer.Option(help="the input topic to replay (kafka.input_topic)")] = None,
    output_topic: Annotated[Optional[str], typer.Option(
        help="where the replay's Bundles go (must exist; never the live kafka.output_topic)")] = None,
    to_files: Annotated[Optional[Path], typer.Option(
        "--to-files", help="dry run: write Bundles, index.jsonl and events.jsonl to this folder instead")] = None,
    dead_letter_topic: Annotated[Optional[str], typer.Option(
        help="the replay's dead letters (must exist)  [default: OUTPUT_TOPIC.dlq]")] = None,
    from_: Annotated[Optional[str], typer.Option("--from", help="window start, ISO 8601 (record timestamps)")] = None,
    to: Annotated[Optional[str], typer.Option("--to", help="window end (exclusive), ISO 8601  [default: now]")] = None,
    offsets: Annotated[Optional[str], typer.Option(
        help="window by offsets: PARTITION=START-END,... (END exclusive; either side may be empty)")] = None,
    group_id: Annotated[Optional[str], typer.Option(
        "--group",
        help="the replay's own consumer group (progress)  [default: derived from window and target]")] = None,
    labeler: Annotated[Optional[str], typer.Option(help="rules | llm")] = None,
    model: Annotated[Optional[str], typer.Option(help="local model directory (llm, in-process)")] = None,
    endpoint: Annotated[Optional[str], typer.Option(help="model server base URL (llm)")] = None,
    api: Annotated[Optional[str], typer.Option(help="openai | tgi")] = None,
    rules_profile: Annotated[Optional[str], typer.Option(help="improved | chexpert (rules)")] = None,
    fallback_to_rules: Annotated[Optional[bool], typer.Option(
        "--fallback-to-rules/--no-fallback-to-rules",
        help="as in run: flagged rule labels when the model is down")] = None,
    max_batch: Annotated[Optional[int], typer.Option(help="records per poll batch")] = None,
    http_port: Annotated[int, typer.Option(help="metrics/health port (-1: off)")] = -1,
    config: Annotated[Optional[Path], typer.Option(help="YAML settings file")] = None,
) -> None:
    """Re-label a window of the input topic (by time or offsets) into another topic or folder; resumable."""
    from connector.labelers import make_labeler
    from connector.logging import configure_logging
    from connector.settings import SettingsError, load_settings
    from connector.stream.connect import BrokerUnavailable
    from connector.stream.replay import default_group
    from connector.stream.window import WindowError, spec

    if (output_topic is None) == (to_files is None):
        raise usage("give --output-topic TOPIC or --to-files DIR (a dry run)")
    kafka = dict(bootstrap_servers=bootstrap_servers, input_topic=input_topic, max_batch=max_batch)
    labeling = dict(kind=labeler, model=model, endpoint=endpoint, api=api, rules_profile=rules_profile,
                    fallback_to_rules=fallback_to_rules)
    settings = load_settings(config, flag_names={("labeler", "kind"): "option --labeler"}, kafka=kafka,
                             labeler=labeling)
    live = settings.kafka
    if output_topic is not None and output_topic in (live.output_topic, live.input_topic):
        raise usage(f"--output-topic {output_topic} is the live connector's topic: replay into another one")
    if output_topic is not None:
        settings.kafka.dead_letter_topic = dead_letter_topic or f"{output_topic}.dlq"
    elif dead_letter_topic is not None:
        raise usage("--dead-letter-topic is for --output-topic; --to-files writes dead letters to DIR/dead-letter/")
    try:
        want = spec(from_, to, offsets)
    except WindowError as exc:
        raise usage(str(exc)) from None
    target = output_topic or str(to_files.resolve())  # type: ignore[union-attr]
    group = group_id or default_group(live.group_id, live.input_topic, target, f"{from_}|{to}|{offsets}")
    if group == live.group_id:
        raise usage(f"--group {group} is the live connector's group: the replay needs its own")
    try:
        backend = make_labeler(settings.labeler)
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    fallback = None
    if settings.labeler.fallback_to_rules and settings.labeler.kind != "rules":
        from connector.rules.labeler import RuleLabeler

        fallback = RuleLabeler()
    configure_logging(settings.log_level, settings.log_json)
    try:
        window = asyncio.run(_resolve(settings, want, output_topic))
        summary = asyncio.run(_replay(settings, backend, fallback, window, group, output_topic, to_files, http_port))
    except BrokerUnavailable as exc:
        raise CliError(str(exc), ExitCode.UNAVAILABLE) from None
    except WindowError as exc:
        raise usage(str(exc)) from None
    typer.echo(json.dumps(summary))


def register(app: typer.Typer) -> None:
    app.command("replay")(replay)
