"""Settings: environment variables with the RADLABEL_ prefix (nested with "__", e.g.
RADLABEL_KAFKA__BOOTSTRAP_SERVERS), optionally a YAML file named by --config or RADLABEL_CONFIG.
Precedence, for every key: command-line flags > environment > YAML file > defaults; a flag that is not given
overrides nothing. An unknown key (file or environment) is an error naming it (connector/settings_sources.py).
"""

from __future__ import annotations

import os
from contextvars import ContextVar
from datetime import tzinfo
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from mappings.scope import ScopeSettingsModel

from connector.hl7.limits import ParseLimits
from connector.settings_sources import (
    SettingsError,
    config_path,
    describe_error,
    drop_unset,
    merge,
    read_env,
    read_yaml,
    record_origin,
)


class _Section(BaseModel):
    # A key the section does not have is an error, not a silently ignored typo (security_protocl: SASL_SSL).
    model_config = ConfigDict(extra="forbid")


class KafkaSettings(_Section):
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
    # At start-up, keep retrying an unreachable broker this long (with backoff) before giving up with an error.
    connect_retry_s: float = Field(30.0, ge=0)
    # Static group membership (KIP-345), e.g. the Kubernetes pod name of a StatefulSet: a member that restarts
    # within session_timeout_ms gets its partitions back without a rebalance; one that stops for good sends no
    # LeaveGroup, so its partitions wait for the session timeout (docs/STREAMING.md "Failover and session timeout").
    group_instance_id: str | None = None
    # Consumer group liveness: a crashed member's partitions move after this long.
    session_timeout_ms: int = 10_000
    # Where a consumer group without committed offsets starts: "earliest" (nothing published before the first
    # start is skipped) or "latest".
    auto_offset_reset: Literal["earliest", "latest"] = "earliest"
    # Upper bound on a fetch long-poll. Tansu answers an empty fetch only when this expires (it does not wake
    # on new data), so at low rates it is added to latency; Kafka wakes early, where it costs nothing.
    fetch_max_wait_ms: int = 20


class LabelerSettings(_Section):
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


class HL7Settings(_Section):
    # HL7 times without a UTC offset (most feeds send local time without one) are read in this IANA zone.
    sender_timezone: str = "UTC"
    # What one message may cost, whoever sent it (connector/hl7/limits.py).
    max_message_bytes: int = Field(1_048_576, ge=1024)
    max_escape_repeat: int = Field(100, ge=1)
    max_escape_expansion: int = Field(65_536, ge=0)

    @field_validator("sender_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (an IANA name such as Europe/Berlin or UTC)") from None
        return value

    def tz(self) -> tzinfo:
        return ZoneInfo(self.sender_timezone)

    def limits(self) -> ParseLimits:
        return ParseLimits(self.max_message_bytes, self.max_escape_repeat, self.max_escape_expansion)


class IdentifierSystem(_Section):
    """One assigning authority -> the site's Identifier.system URI (docs/HL7_FHIR.md "Identifier systems"). It matches
    an HD by universal id (HD-2, with its type HD-3 when given here) or by namespace id (HD-1): name both when the
    feed sends both forms, and they resolve to one system."""

    namespace: str | None = None
    universal_id: str | None = None
    universal_id_type: str | None = None  # e.g. ISO (an OID), UUID, DNS
    system: str

    @field_validator("system")
    @classmethod
    def _absolute_uri(cls, value: str) -> str:
        scheme, colon, rest = value.partition(":")
        if not colon or not rest or not scheme.isascii() or not scheme[:1].isalpha() or any(c.isspace() for c in value):
            raise ValueError(f"system {value!r} is not an absolute URI (e.g. urn:oid:1.2.3, https://hospital.example/mrn)")
        return value

    @model_validator(mode="after")
    def _names_an_authority(self) -> IdentifierSystem:
        if not (self.namespace or self.universal_id):
            raise ValueError("an identifier system needs namespace and/or universal_id")
        return self


class FhirSettings(_Section):
    """What the FHIR output writes (docs/HL7_FHIR.md "Output profiles", "Identifier systems")."""

    # standalone: the bundle writes Patient and DiagnosticReport itself; enrich: it references the hospital's own
    # by identifier. Unset: enrich for `run` (a hospital's feed), standalone for `convert` and `demo`.
    profile: Literal["standalone", "enrich"] | None = None
    # enrich: conditionally create a minimal Patient / DiagnosticReport when the server has none with the identifier
    # (for servers that no feed fills). Off: a report whose patient is missing fails at the server, not here.
    placeholders: bool = False
    # An assigning authority no rule below names: use the fallback system and count it (radlabel_identifier_fallback),
    # or dead-letter the record (unknown-assigning-authority).
    unknown_authority: Literal["fallback", "dead-letter"] = "fallback"
    patient_identifier_systems: list[IdentifierSystem] = Field(default_factory=list)  # PID-3 CX-4; order = preference
    accession_identifier_systems: list[IdentifierSystem] = Field(default_factory=list)  # OBR-3/2 EI-2..4, else MSH-4

    @field_validator("patient_identifier_systems", "accession_identifier_systems", mode="before")
    @classmethod
    def _json_from_env(cls, value: Any) -> Any:
        # RADLABEL_FHIR__PATIENT_IDENTIFIER_SYSTEMS='[{"namespace": "DEMOHOSP", "system": "urn:oid:1.2.3"}]'
        if isinstance(value, str):
            import json

            try:
                return json.loads(value)
            except ValueError:
                raise ValueError("expected a JSON list of {namespace, universal_id, universal_id_type, system}") from None
        return value

    @field_validator("patient_identifier_systems", "accession_identifier_systems")
    @classmethod
    def _unambiguous(cls, value: list[IdentifierSystem]) -> list[IdentifierSystem]:
        seen: set[tuple[str, str]] = set()
        for rule in value:
            for key in (("namespace", rule.namespace), ("universal_id", rule.universal_id)):
                if key[1] is None:
                    continue
                if key in seen:  # type: ignore[comparison-overlap]
                    raise ValueError(f"{key[0]} {key[1]!r} is named by two rules")
                seen.add(key)  # type: ignore[arg-type]
        return value

    def output_profile(self, default: Literal["standalone", "enrich"]) -> Any:
        """The pure functions' OutputProfile (connector.fhir.identifiers), ``default`` when ``profile`` is unset."""
        from connector.fhir.identifiers import OutputProfile, SystemRule

        def rules(items: list[IdentifierSystem]) -> tuple[SystemRule, ...]:
            return tuple(SystemRule(i.system, i.namespace, i.universal_id, i.universal_id_type) for i in items)

        return OutputProfile(kind=self.profile or default, placeholders=self.placeholders,
                             patient_systems=rules(self.patient_identifier_systems),
                             accession_systems=rules(self.accession_identifier_systems),
                             unknown_authority=self.unknown_authority)


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


class AuditSettings(_Section):
    """`radlabel audit` (docs/AUDIT.md)."""

    # Key of the salted patient-identifier hash in audit exports (HMAC-SHA256). Keep it secret and the same across
    # exports that must be joined; without it nobody can test a guessed MRN against the table.
    salt: SecretStr | None = None


class SinkAuthSettings(_Section):
    """How `radlabel sink` authenticates to the FHIR server (docs/FHIR_SINK.md "Authentication")."""

    # none | bearer (a fixed token from `token` or `token_file`) | client-credentials (OAuth2, SMART Backend
    # Services style: `client_secret`, or a signed JWT assertion with `private_key_file`).
    kind: Literal["none", "bearer", "client-credentials"] = "none"
    token: SecretStr | None = None  # RADLABEL_SINK__AUTH__TOKEN
    token_file: str | None = None  # re-read when the server answers 401 (a rotated secret mount)
    token_url: str | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    # How a client secret is presented: HTTP Basic (RFC 6749's preferred client_secret_basic) or form fields
    # (client_secret_post, which some identity providers expect).
    client_secret_method: Literal["basic", "post"] = "basic"
    private_key_file: str | None = None  # PEM; private_key_jwt client authentication (RFC 7523)
    private_key_alg: Literal["RS384", "ES384", "RS256", "ES256"] = "RS384"  # SMART requires RS384 or ES384
    key_id: str | None = None  # the JWK "kid" the server knows the public key by
    scope: str | None = None  # e.g. "system/Observation.write system/Provenance.write"
    # A token is refreshed this long before it expires, so no request goes out with a token about to lapse.
    refresh_margin_s: float = Field(60.0, ge=0)

    @model_validator(mode="after")
    def _complete(self) -> SinkAuthSettings:
        if self.kind == "bearer" and not (self.token or self.token_file):
            raise ValueError("auth kind bearer needs token or token_file")
        if self.kind == "client-credentials":
            if not (self.token_url and self.client_id):
                raise ValueError("auth kind client-credentials needs token_url and client_id")
            if bool(self.client_secret) == bool(self.private_key_file):
                raise ValueError("auth kind client-credentials needs exactly one of client_secret and private_key_file")
        return self


class SinkSettings(_Section):
    """`radlabel sink`: Bundles from the output topic into a FHIR server (docs/FHIR_SINK.md)."""

    fhir_url: str | None = None  # the server's base URL: transactions are POSTed here
    # The profile the sink accepts (the record's `fhir-profile` header); a record of another profile is a dead
    # letter (a standalone bundle must not create Patients in a hospital's server). Unset: whatever the record says.
    profile: Literal["standalone", "enrich"] | None = None
    topic: str | None = None  # unset: kafka.output_topic (what `radlabel run` writes)
    group_id: str = "radlabel-sink"  # its own consumer group: the sink's offsets are not the connector's
    dead_letter_topic: str = "fhir.observations.dlq"
    # How findings a newer version no longer asserts are retired: marked entered-in-error (history kept,
    # clinical systems are told) or deleted.
    retire: Literal["entered-in-error", "delete"] = "entered-in-error"
    # Who resolves conditional references (Patient?identifier=...) of enrich bundles: the server inside the
    # transaction (HAPI, Smile, Azure, Medplum's server), or the sink (a search per reference before sending;
    # for servers that do not resolve them in transactions). No match or several: a dead letter.
    conditional_references: Literal["server", "sink"] = "server"
    timeout_s: float = Field(30.0, gt=0)
    max_retries: int = Field(5, ge=0)  # per request, then the partitions pause (the loop retries the batch later)
    backoff_s: float = Field(0.5, ge=0)
    backoff_max_s: float = Field(30.0, ge=0)
    retry_after_max_s: float = Field(120.0, ge=0)  # a server's Retry-After is honoured up to this
    max_in_flight: int = Field(8, ge=1)  # transactions in flight, merged or not (one report's versions stay in order)
    # First versions of up to this many reports go to the server as one transaction, each resource written once:
    # fewer, larger POSTs cost the server and the sink less per report (benchmarks/sink.md). A merged transaction
    # the server refuses is resent report by report, so a bad bundle is still a dead letter alone. 1: one
    # transaction per report. Never merged: versions that replace labels on the server (If-Match, retiring),
    # conditional creates, and bundles whose references the sink resolves.
    reports_per_transaction: int = Field(4, ge=1)
    # The server's cap on one transaction (Medplum: 50 updates; Azure: 500 entries): merging stops below it.
    max_transaction_entries: int = Field(50, ge=1)
    ca_file: str | None = None  # extra CA bundle (PEM) for a hospital-internal server; verification stays on
    auth: SinkAuthSettings = Field(default_factory=SinkAuthSettings)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADLABEL_", env_nested_delimiter="__", extra="forbid")

    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    labeler: LabelerSettings = Field(default_factory=LabelerSettings)
    hl7: HL7Settings = Field(default_factory=HL7Settings)
    # Study scope (mappings/scope.py): extra studies a site has validated, and its own procedure codes.
    scope: ScopeSettingsModel = Field(default_factory=ScopeSettingsModel)
    mllp: MllpSettings = Field(default_factory=MllpSettings)
    fhir: FhirSettings = Field(default_factory=FhirSettings)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    sink: SinkSettings = Field(default_factory=SinkSettings)
    log_level: str = "INFO"
    log_json: bool = True
    http_port: int = 8080  # metrics + health (-1: off)
    http_host: str = "0.0.0.0"  # bind address of the metrics/health server (127.0.0.1: this host only)
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
        if _MERGED.get():
            return (init_settings,)  # load_settings() has read and merged every source itself
        return (init_settings, env_settings, _YamlSource(settings_cls))


# Set while load_settings() builds a Settings from the sources it merged (so they are not read twice).
_MERGED: ContextVar[bool] = ContextVar("radlabel_settings_merged", default=False)


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


def load_settings(
    config: Path | None = None, *, flag_names: dict[tuple[str, ...], str] | None = None, **flags: Any
) -> Settings:
    """Settings from flags (``flags``: nested dicts, None = not given) > RADLABEL_* env > YAML > defaults.

    ``flag_names`` maps a setting (("kafka", "group_id")) to the option that set it ("--group"), for messages.
    Raises :class:`SettingsError` (one line naming the variable, file key or option) for a missing or broken
    file, an unknown key, or a bad value."""
    path, named_by = config_path(config)
    yaml_data, yaml_origin = read_yaml(path, Settings, named_by) if path is not None else ({}, {})
    env_data, env_origin = read_env(os.environ, Settings)
    flag_data = drop_unset(flags)
    flag_origin = record_origin(
        flag_data, lambda loc: (flag_names or {}).get(loc) or "option --" + loc[-1].replace("_", "-")
    )
    origin = {**yaml_origin, **env_origin, **flag_origin}
    token = _MERGED.set(True)
    try:
        return Settings(**merge(yaml_data, env_data, flag_data))
    except ValidationError as exc:
        raise SettingsError(describe_error(exc, origin)) from None
    finally:
        _MERGED.reset(token)


__all__ = ["AuditSettings", "FhirSettings", "HL7Settings", "IdentifierSystem", "KafkaSettings", "LabelerSettings", "Settings",
           "SettingsError", "SinkAuthSettings", "SinkSettings", "load_settings"]
