"""Typed client configuration, built from :class:`connector.settings.LabelerSettings`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator


class ClientConfig(BaseModel):
    model_config = ConfigDict(frozen=True)

    endpoint: str  # server base URL, with or without a trailing /v1
    api_key: SecretStr | None = None
    model_name: str | None = None
    response_format: Literal["auto", "llamacpp", "openai", "tgi"] = "auto"
    timeout_s: float = Field(30.0, gt=0)
    max_concurrency: int = Field(4, ge=1)
    max_retries: int = Field(4, ge=0)
    max_new_tokens: int = Field(256, ge=1)
    breaker_failures: int = Field(5, ge=1)
    breaker_reset_s: float = Field(30.0, ge=0)
    ca_bundle: str | None = None
    tokenizer: str | None = None
    # Backoff between retries; small values keep tests fast, production keeps the defaults.
    backoff_base_s: float = Field(0.25, ge=0)
    backoff_cap_s: float = Field(8.0, ge=0)

    @field_validator("endpoint")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("endpoint must be an http:// or https:// URL")
        return value.rstrip("/")

    @classmethod
    def from_settings(cls, settings: object, **overrides: object) -> ClientConfig:
        """Take the labeler fields from LabelerSettings (duck-typed so this package does not import the connector)."""
        names = [n for n in cls.model_fields if hasattr(settings, n)]
        values = {n: getattr(settings, n) for n in names if getattr(settings, n) is not None}
        if not values.get("endpoint"):
            raise ValueError("a model-server labeler needs an endpoint URL")
        values.update(overrides)
        return cls(**values)
