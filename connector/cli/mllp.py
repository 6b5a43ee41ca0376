"""radlabel sub-commands: mllp (the MLLP gateway), publish (HL7 files -> input topic), send (HL7 files -> MLLP)."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from connector.cli.errors import ExitCode
from connector.cli.stream import BootstrapOpt, _install_signal_handlers

ConfigOpt = Annotated[Optional[Path], typer.Option(help="YAML settings file")]
FilesArg = Annotated[list[Path], typer.Argument(exists=True, dir_okay=False,
                                                help="HL7 v2 files (MLLP-framed or plain ER7)")]


def _load(config: Path | None, kafka: dict[str, Any], mllp: dict[str, Any] | None = None, **top: Any) -> Any:
    """Settings with the given flags on top, key by key (flags > RADLABEL_* env > YAML > defaults; a flag not given,
    None, overrides nothing). A bad value raises SettingsError: one line, via the CLI's error wrapper."""
    from connector.settings import load_settings

    return load_settings(config, flag_names=_FLAG_NAMES, kafka=kafka, mllp=mllp or {}, **top)


_FLAG_NAMES = {("kafka", "bootstrap_servers"): "option --bootstrap-servers", ("kafka", "input_topic"): "option --topic",
               ("mllp", "broker_timeout_s"): "option --broker-timeout", ("mllp", "idle_timeout_s"): "option --idle-timeout",
               ("mllp", "tls_certfile"): "option --tls-cert", ("mllp", "tls_keyfile"): "option --tls-key",
               ("mllp", "tls_client_cafile"): "option --tls-client-ca", ("mllp", "allowed_peers"): "option --allow-peer"}


def register(app: typer.Typer) -> None:
    @app.command()
    def mllp(
        bootstrap_servers: BootstrapOpt = None,
        port: Annotated[Optional[int], typer.Option(help="MLLP listen port (default 2575; 0: a free one)")] = None,
        host: Annotated[Optional[str], typer.Option(help="listen address (default 0.0.0.0)")] = None,
        topic: Annotated[Optional[str], typer.Option(help="input topic (default: kafka.input_topic)")] = None,
        non_oru: Annotated[Optional[str], typer.Option(help="well-formed non-ORU^R01: ack | forward | reject")] = None,
        max_message_bytes: Annotated[Optional[int], typer.Option(help="larger messages are answered AR")] = None,
        broker_timeout_s: Annotated[Optional[float], typer.Option(
            "--broker-timeout", help="seconds to wait for the broker before giving up on a message")] = None,
        on_broker_timeout: Annotated[Optional[str], typer.Option(help="close | AE")] = None,
        idle_timeout_s: Annotated[Optional[float], typer.Option(
            "--idle-timeout", help="close connections silent this long (0: never)")] = None,
        tls_cert: Annotated[Optional[str], typer.Option(help="server certificate (PEM): enables TLS")] = None,
        tls_key: Annotated[Optional[str], typer.Option(help="server key (PEM)")] = None,
        tls_client_ca: Annotated[Optional[str], typer.Option(help="CA for client certificates")] = None,
        tls_client_auth: Annotated[Optional[str], typer.Option(help="none | optional | required")] = None,
        allow_peer: Annotated[Optional[list[str]], typer.Option(
            help="allowed peer address or CIDR (repeatable; default: any)")] = None,
        http_port: Annotated[Optional[int], typer.Option(help="metrics/health port (-1: off)")] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Run the MLLP gateway: HL7 from interface engines -> input topic (acks=all), ACK only once stored."""
        from connector.logging import configure_logging
        from connector.mllp.gateway import MllpGateway

        settings = _load(config, dict(bootstrap_servers=bootstrap_servers, input_topic=topic),
                         dict(port=port, host=host, non_oru=non_oru, max_message_bytes=max_message_bytes,
                              broker_timeout_s=broker_timeout_s, on_broker_timeout=on_broker_timeout,
                              idle_timeout_s=idle_timeout_s, tls_certfile=tls_cert, tls_keyfile=tls_key,
                              tls_client_cafile=tls_client_ca, tls_client_auth=tls_client_auth,
                              allowed_peers=allow_peer or None),
                         http_port=http_port)
        configure_logging(settings.log_level, settings.log_json)

        def announce(info: dict) -> None:
            # One JSON line on stdout when connections are accepted (logs go to stderr).
            print(json.dumps(info), flush=True)

        try:
            gateway = MllpGateway(settings, on_ready=announce)
        except (OSError, ValueError) as exc:  # unreadable certificate or key
            raise typer.BadParameter(f"TLS: {exc}") from None

        async def serve() -> None:
            _install_signal_handlers(gateway.request_stop)
            await gateway.run()

        try:
            asyncio.run(serve())
        except OSError as exc:  # e.g. the port is taken
            typer.echo(f"mllp: cannot listen on {settings.mllp.host}:{settings.mllp.port} ({exc.strerror or exc})",
                       err=True)
            raise typer.Exit(2) from None

    @app.command()
    def publish(
        files: FilesArg,
        bootstrap_servers: BootstrapOpt = None,
        topic: Annotated[Optional[str], typer.Option(help="input topic (default: kafka.input_topic)")] = None,
        config: ConfigOpt = None,
    ) -> None:
        """Publish HL7 files to the input topic, keyed and with headers as the MLLP gateway writes them."""
        from aiokafka.errors import KafkaError

        from connector.mllp.client import files_messages, publish_messages

        settings = _load(config, dict(bootstrap_servers=bootstrap_servers, input_topic=topic))
        messages = [m for _, _, m in files_messages(files)]
        try:
            placed = asyncio.run(publish_messages(messages, settings.kafka, settings.kafka.input_topic))
        except KafkaError as exc:
            typer.echo(f"publish: broker {settings.kafka.bootstrap_servers} failed ({type(exc).__name__}); "
                       "check --bootstrap-servers", err=True)
            raise typer.Exit(ExitCode.UNAVAILABLE) from None
        partitions: dict[str, int] = {}
        for partition, _ in placed:
            partitions[str(partition)] = partitions.get(str(partition), 0) + 1
        typer.echo(json.dumps({"published": len(placed), "topic": settings.kafka.input_topic,
                               "partitions": dict(sorted(partitions.items()))}))

    @app.command()
    def send(
        files: FilesArg,
        host: Annotated[str, typer.Option(help="MLLP listener host")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="MLLP listener port")] = 2575,
        timeout_s: Annotated[float, typer.Option("--timeout", help="seconds to wait for each ACK")] = 30.0,
        tls: Annotated[bool, typer.Option(help="use TLS (system CAs unless --tls-ca)")] = False,
        tls_ca: Annotated[Optional[str], typer.Option(help="CA file for the server certificate")] = None,
        tls_cert: Annotated[Optional[str], typer.Option(help="client certificate (PEM)")] = None,
        tls_key: Annotated[Optional[str], typer.Option(help="client key (PEM)")] = None,
    ) -> None:
        """Send HL7 files over MLLP, one message at a time, printing each ACK as a JSON line.
        Exit code 1 when any message was not accepted (AE/AR/CE/CR or no ACK)."""
        from connector.mllp.client import MllpSender, client_ssl_context, files_messages

        try:
            context = client_ssl_context(tls, tls_ca, tls_cert, tls_key)
        except (OSError, ValueError) as exc:
            raise typer.BadParameter(f"TLS: {exc}") from None

        async def run() -> int:
            sender = MllpSender(host, port, ssl_context=context, timeout_s=timeout_s)
            failures = 0
            try:
                for path, n, message in files_messages(files):
                    result = await sender.send(message)
                    ok = result.code in ("AA", "CA")
                    failures += not ok
                    line = {"file": str(path), "message": n, "code": result.code,
                            "ack": result.ack.decode("latin-1").strip("\r").split("\r") if result.ack else None}
                    if result.error:
                        line["error"] = result.error
                    print(json.dumps(line), flush=True)
            finally:
                await sender.close()
            return failures

        failures = asyncio.run(run())
        if failures:
            print(f"send: {failures} message(s) not accepted", file=sys.stderr)
        # README "Exit codes": 3 = input rejected (the gateway answered AE/AR or gave no ACK for some message)
        raise typer.Exit(ExitCode.REJECTED if failures else ExitCode.OK)
