"""`radlabel sink`: Bundles from the output topic into a FHIR server (docs/FHIR_SINK.md)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Optional

import typer

from connector.cli.stream import BootstrapOpt, _install_signal_handlers

_SINK_FLAGS = {("sink", "group_id"): "option --group", ("sink", "fhir_url"): "option --fhir-url",
               ("sink", "profile"): "option --profile", ("sink", "topic"): "option --topic"}


async def _run_sink(settings) -> None:
    from connector.sink.app import SinkApp

    app = SinkApp(settings)
    _install_signal_handlers(app.request_stop)
    await app.run()


def register(app: typer.Typer) -> None:
    @app.command()
    def sink(
        bootstrap_servers: BootstrapOpt = None,
        fhir_url: Annotated[Optional[str], typer.Option(help="FHIR server base URL (transactions are POSTed here)")] = None,
        profile: Annotated[Optional[str], typer.Option(help="standalone | enrich: the only profile accepted")] = None,
        topic: Annotated[Optional[str], typer.Option(help="topic of FHIR Bundles (default kafka.output_topic)")] = None,
        group_id: Annotated[Optional[str], typer.Option("--group", help="consumer group id")] = None,
        http_port: Annotated[Optional[int], typer.Option(help="metrics/health port (-1: off)")] = None,
        config: Annotated[Optional[Path], typer.Option(help="YAML settings file")] = None,
    ) -> None:
        """Write the Bundles of the output topic into a FHIR server until SIGTERM/SIGINT (commits after the
        server accepted them; pauses while it is down)."""
        from connector.cli.errors import CliError, ExitCode
        from connector.logging import configure_logging
        from connector.settings import SettingsError, load_settings
        from connector.sink.auth import AuthConfigError
        from connector.stream.connect import BrokerUnavailable

        settings = load_settings(config, flag_names=_SINK_FLAGS, kafka=dict(bootstrap_servers=bootstrap_servers),
                                 sink=dict(fhir_url=fhir_url, profile=profile, topic=topic, group_id=group_id),
                                 http_port=http_port)
        if not settings.sink.fhir_url:
            raise SettingsError("sink.fhir_url is required: --fhir-url URL or RADLABEL_SINK__FHIR_URL")
        configure_logging(settings.log_level, settings.log_json)
        try:
            asyncio.run(_run_sink(settings))
        except BrokerUnavailable as exc:
            raise CliError(str(exc), ExitCode.UNAVAILABLE) from None
        except AuthConfigError as exc:  # an unreadable key file, found while building the client
            raise SettingsError(str(exc)) from None
