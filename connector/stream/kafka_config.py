"""Settings -> aiokafka client keyword arguments (SSL/SASL passed through unchanged)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connector.settings import KafkaSettings, SettingsError


def client_kwargs(settings: KafkaSettings) -> dict[str, Any]:
    kwargs: dict[str, Any] = {
        "bootstrap_servers": settings.bootstrap_servers,
        "client_id": settings.client_id,
        "security_protocol": settings.security_protocol,
    }
    if settings.security_protocol in ("SSL", "SASL_SSL"):
        from aiokafka.helpers import create_ssl_context

        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(settings, name)
            if path and not Path(path).is_file():
                raise SettingsError(f"kafka.{name}: file {path} does not exist")

        kwargs["ssl_context"] = create_ssl_context(
            cafile=settings.ssl_cafile, certfile=settings.ssl_certfile, keyfile=settings.ssl_keyfile
        )
    if settings.security_protocol.startswith("SASL"):
        kwargs["sasl_mechanism"] = settings.sasl_mechanism or "PLAIN"
        kwargs["sasl_plain_username"] = settings.sasl_plain_username
        if settings.sasl_plain_password is not None:
            kwargs["sasl_plain_password"] = settings.sasl_plain_password.get_secret_value()
    return kwargs


def producer_max_request_size(settings: KafkaSettings) -> int:
    # Dead letters carry the raw input unchanged, so the producer must accept anything the input topic did
    # (oversize inputs included) plus headers.
    return max(16 * 1_048_576, 4 * settings.max_record_bytes + 65_536)
