"""radlabel sub-commands: run (the streaming connector), broker (local Tansu), demo (everything, end to end)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

BootstrapOpt = Annotated[Optional[str], typer.Option("--bootstrap-servers", "-b", help="host:port[,host:port]")]


# The option that sets each key, for error messages ("option --group: ...").
_RUN_FLAGS = {("kafka", "group_id"): "option --group", ("labeler", "kind"): "option --labeler"}


def _settings(config: Path | None, kafka: dict[str, Any], labeler: dict[str, Any], **top: Any) -> Any:
    """Flags > RADLABEL_* env > settings file > defaults, key by key (None: the option was not given)."""
    from connector.settings import load_settings

    return load_settings(config, flag_names=_RUN_FLAGS, kafka=kafka, labeler=labeler, **top)


def _install_signal_handlers(stop: Any) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop)


async def _run_connector(settings: Any, labeler: Any) -> None:
    from connector.stream.app import StreamApp

    fallback = None
    if settings.labeler.fallback_to_rules and settings.labeler.kind != "rules":
        from connector.rules.labeler import RuleLabeler

        fallback = RuleLabeler()
    app = StreamApp(settings, labeler, fallback=fallback)
    _install_signal_handlers(app.request_stop)
    try:
        await app.run()
    finally:
        await labeler.aclose()
        if fallback is not None:
            await fallback.aclose()


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        bootstrap_servers: BootstrapOpt = None,
        input_topic: Annotated[Optional[str], typer.Option(help="raw HL7 v2 input topic")] = None,
        output_topic: Annotated[Optional[str], typer.Option(help="FHIR Bundle output topic")] = None,
        dead_letter_topic: Annotated[Optional[str], typer.Option(help="dead-letter topic")] = None,
        group_id: Annotated[Optional[str], typer.Option("--group", help="consumer group id")] = None,
        labeler: Annotated[Optional[str], typer.Option(help="rules | llm")] = None,
        model: Annotated[Optional[str], typer.Option(help="local model directory (llm, in-process)")] = None,
        endpoint: Annotated[Optional[str], typer.Option(help="model server base URL (llm)")] = None,
        api: Annotated[Optional[str], typer.Option(help="openai | tgi")] = None,
        fallback_to_rules: Annotated[Optional[bool], typer.Option(
            "--fallback-to-rules/--no-fallback-to-rules",
            help="label with the rule labeler (flagged) when the model server stays down")] = None,
        max_batch: Annotated[Optional[int], typer.Option(help="records per poll batch")] = None,
        non_oru: Annotated[Optional[str], typer.Option(help="skip | dead-letter")] = None,
        auto_offset_reset: Annotated[Optional[str], typer.Option(
            help="where a group with no committed offsets starts: earliest | latest")] = None,
        http_port: Annotated[Optional[int], typer.Option(help="metrics/health port (-1: off)")] = None,
        http_host: Annotated[Optional[str], typer.Option(help="metrics/health bind address")] = None,
        config: Annotated[Optional[Path], typer.Option(help="YAML settings file")] = None,
    ) -> None:
        """Run the streaming connector until SIGTERM/SIGINT (finishes the batch in flight, commits, leaves)."""
        from connector.labelers import make_labeler
        from connector.logging import configure_logging
        from connector.settings import SettingsError

        kafka = dict(bootstrap_servers=bootstrap_servers, input_topic=input_topic, output_topic=output_topic,
                     dead_letter_topic=dead_letter_topic, group_id=group_id, max_batch=max_batch, non_oru=non_oru,
                     auto_offset_reset=auto_offset_reset)
        labeling = dict(kind=labeler, model=model, endpoint=endpoint, api=api, fallback_to_rules=fallback_to_rules)
        settings = _settings(config, kafka=kafka, labeler=labeling, http_port=http_port, http_host=http_host)
        try:
            backend = make_labeler(settings.labeler)
        except ValueError as exc:  # e.g. --labeler llm without --model or --endpoint
            raise SettingsError(str(exc)) from None
        configure_logging(settings.log_level, settings.log_json)
        from connector.cli.errors import CliError, ExitCode
        from connector.stream.connect import BrokerUnavailable

        try:
            asyncio.run(_run_connector(settings, backend))
        except BrokerUnavailable as exc:
            raise CliError(str(exc), ExitCode.UNAVAILABLE) from None

    @app.command()
    def broker(
        port: Annotated[int, typer.Option(help="listen port (0: a free one)")] = 0,
        topics: Annotated[Optional[str], typer.Option(help="comma-separated topics to create")] = None,
        partitions: Annotated[int, typer.Option(help="partitions per created topic")] = 4,
    ) -> None:
        """Start a local Kafka-protocol broker (Tansu, memory only) for development; Ctrl-C stops it."""
        from connector.stream.broker import LocalBroker, create_topics

        async def serve(local: LocalBroker) -> None:
            stop = asyncio.Event()
            _install_signal_handlers(stop.set)  # before announcing, so an early Ctrl-C is handled too
            if topics:
                await create_topics(local.bootstrap_servers,
                                    {t.strip(): partitions for t in topics.split(",") if t.strip()})
            typer.echo(f"broker listening on {local.bootstrap_servers} (pid {local.pid}); Ctrl-C to stop")
            typer.echo(f"  radlabel run --bootstrap-servers {local.bootstrap_servers}")
            await stop.wait()

        with LocalBroker(port=port or None) as local:
            asyncio.run(serve(local))
        typer.echo("broker stopped")

    @app.command()
    def demo(
        out_dir: Annotated[Path, typer.Option("--out", help="where the FHIR Bundles are written")] = Path(
            "radlabel-demo-out"),
        samples: Annotated[Optional[Path], typer.Option(help="directory of .hl7 files (default: bundled)")] = None,
        timeout_s: Annotated[float, typer.Option(help="give up after this long")] = 60.0,
    ) -> None:
        """Start a local broker and the connector (rule labeler), publish the sample ORU messages, print results."""
        from connector.logging import configure_logging
        from connector.stream.demo import run_demo

        configure_logging("ERROR", json=True)  # the table is the output
        code = asyncio.run(run_demo(out_dir, samples, timeout_s, echo=typer.echo))
        raise typer.Exit(code)
