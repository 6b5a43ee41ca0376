"""Settings: environment variables with the RADLABEL_ prefix (nested with "__", e.g.
RADLABEL_KAFKA__BOOTSTRAP_SERVERS), optionally a YAML file named by RADLABEL_CONFIG or --config.
Precedence: explicit arguments > environment > YAML file > defaults.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class KafkaSettings(BaseModel):
    bootstrap_servers: str = "localhost:9092"
    input_topic: str = "hl7.oru.radiology"
    output_topic: str = "fhir.observations"
    dead_letter_topic: str = "hl7.oru.radiology.dlq"
    group_id: str = "radlabel"
    client_id: str = "radlabel"
    # Passed through to aiokafka unchanged (SSL/SASL for real clusters).
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    max_batch: int = 64
    max_record_bytes: int = 1_048_576
    # What to do with well-formed messages that are not ORU^R01 radiology results.
    non_oru: Literal["skip", "dead-letter"] = "dead-letter"
    # Consumer group liveness: a crashed member's partitions move after this long.
    session_timeout_ms: int = 10_000
    # Upper bound on a fetch long-poll. Tansu answers an empty fetch only when this expires (it does not wake
    # on new data), so at low rates it is added to latency; Kafka wakes early, where it costs nothing.
    fetch_max_wait_ms: int = 20


class LabelerSettings(BaseModel):
    kind: Literal["rules", "llm"] = "rules"
    # Rule labeler profile: "improved" (LABELING_GUIDELINES.md) or "chexpert" (faithful CheXpert-style baseline).
    rules_profile: Literal["improved", "chexpert"] = "improved"
    model: str | None = None  # local model directory (in-process)
    endpoint: str | None = None  # model server base URL
    api: Literal["openai", "tgi"] = "openai"
    response_format: Literal["auto", "llamacpp", "openai", "tgi"] = "auto"
    model_name: str | None = None  # model id sent to OpenAI-compatible servers
    api_key: SecretStr | None = None
    timeout_s: float = 30.0
    max_concurrency: int = 4
    max_retries: int = 4
    # Model-server client (inference_client): answer budget, breaker, TLS, TGI-native prompt rendering.
    max_new_tokens: int = 256  # a compact answer with all 14 keys is 113 Qwen tokens
    breaker_failures: int = 5
    breaker_reset_s: float = 30.0
    ca_bundle: str | None = None  # extra CA file for a hospital-internal TLS endpoint; verification stays on
    tokenizer: str | None = None  # dir/id whose chat template renders prompts for TGI's native /generate
    # Explicit, opt-in fallback to the rule labeler when the model is down (flagged in output and metrics).
    fallback_to_rules: bool = False


class MllpSettings(BaseModel):
    """`radlabel mllp`: the MLLP listener in front of the input topic (docs/MLLP.md)."""

    model_config = ConfigDict(extra="forbid")
    host: str = "0.0.0.0"
    port: int = Field(2575, ge=0, le=65535)  # 2575: the IANA port for HL7 over MLLP
    max_message_bytes: int = Field(1_048_576, ge=1024)  # larger frames are answered AR, connection kept
    broker_timeout_s: float = Field(10.0, gt=0)  # longest wait for the broker before giving up on a message
    on_broker_timeout: Literal["close", "AE"] = "close"  # close: no ACK, the engine resends on a new connection
    non_oru: Literal["ack", "forward", "reject"] = "forward"  # well-formed messages that are not ORU^R01
    idle_timeout_s: float = Field(600.0, ge=0)  # close a connection silent this long (0: never)
    tls_certfile: str | None = None  # server certificate (PEM); TLS is on when set
    tls_keyfile: str | None = None
    tls_client_cafile: str | None = None  # CA that signs client certificates
    tls_client_auth: Literal["none", "optional", "required"] = "none"
    allowed_peers: list[str] = Field(default_factory=list)  # IP addresses / CIDR networks; empty: any peer

    @field_validator("allowed_peers", mode="before")
    @classmethod
    def _split_peers(cls, value: Any) -> Any:
        return [p.strip() for p in value.split(",") if p.strip()] if isinstance(value, str) else value

    @field_validator("allowed_peers")
    @classmethod
    def _valid_peers(cls, value: list[str]) -> list[str]:
        import ipaddress

        for peer in value:
            try:
                ipaddress.ip_network(peer, strict=False)
            except ValueError:
                raise ValueError(f"{peer!r} is not an IP address or CIDR network") from None
        return value

    @model_validator(mode="after")
    def _tls_consistent(self) -> MllpSettings:
        if self.tls_client_auth != "none" and not (self.tls_certfile and self.tls_client_cafile):
            raise ValueError("tls_client_auth needs tls_certfile and tls_client_cafile")
        if self.tls_client_cafile and not self.tls_certfile:
            raise ValueError("tls_client_cafile needs tls_certfile (client certificates are checked only under TLS)")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADLABEL_", env_nested_delimiter="__", extra="ignore")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    labeler: LabelerSettings = Field(default_factory=LabelerSettings)
    mllp: MllpSettings = Field(default_factory=MllpSettings)
    log_level: str = "INFO"
    log_json: bool = True
    http_port: int = 8080  # metrics + health
    config_file: Path | None = None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls))


class _YamlSource(PydanticBaseSettingsSource):
    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:  # pragma: no cover - unused
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        path = os.environ.get("RADLABEL_CONFIG")
        if not path:
            return {}
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(data, dict):
            raise ValueError(f"{path}: settings file must hold a mapping")
        return data


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    if config is not None:
        os.environ["RADLABEL_CONFIG"] = str(config)
    return Settings(**overrides)
