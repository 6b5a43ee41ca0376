"""Shared machinery of the model-server labelers: one pooled httpx.AsyncClient, bounded concurrency,
retries + circuit breaker (resilience.py), error classification (errors.py) and strict answer parsing
(mappings.prompt). Subclasses implement one API family: how to ask for one report and read the reply.
"""

from __future__ import annotations

import abc
import asyncio
import random
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from mappings.labels import (
    AnswerInvalid,
    LabelerError,
    LabelerInfo,
    LabelerUnavailable,
    LabelSet,
    PerReportLabeler,
    ReportTooLong,
)
from mappings.prompt import PROMPT_VERSION, parse_answer

from inference_client import __version__
from inference_client.config import ClientConfig
from inference_client.errors import ServerMisconfigured, ServerUnavailable, classify_status, truncated
from inference_client.resilience import BreakerState, CallStats, CircuitBreaker, RetryPolicy, call_resilient

log = structlog.get_logger("inference_client")


def _tls_verification_failed(exc: BaseException) -> bool:
    """A certificate the client does not trust will not become trusted by retrying: configuration, not outage."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def root_url(endpoint: str) -> str:
    """Server root: users paste either "http://host:8080" or "http://host:8080/v1"; paths below are absolute."""
    endpoint = endpoint.rstrip("/")
    return endpoint[: -len("/v1")] if endpoint.endswith("/v1") else endpoint


@dataclass(frozen=True)
class Generation:
    """One server reply, reduced to what labeling needs."""

    text: str
    finish_reason: str | None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


class HTTPLabeler(PerReportLabeler, abc.ABC):
    api: str = "http"

    def __init__(
        self,
        config: ClientConfig,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.info = LabelerInfo(name="llm", version=f"{__version__}+prompt{PROMPT_VERSION}", model=config.model_name)
        headers = {"Accept": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        # TLS verification is always on; a hospital CA is added, never a way to switch it off.
        verify: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=config.ca_bundle) if config.ca_bundle else True
        )
        self._http = httpx.AsyncClient(
            base_url=root_url(config.endpoint),
            headers=headers,
            timeout=httpx.Timeout(config.timeout_s, connect=min(5.0, config.timeout_s)),
            limits=httpx.Limits(
                max_connections=config.max_concurrency, max_keepalive_connections=config.max_concurrency
            ),
            verify=verify,
            transport=transport,
        )
        self._slots = asyncio.Semaphore(config.max_concurrency)
        self.policy = RetryPolicy(
            max_retries=config.max_retries, base_s=config.backoff_base_s, cap_s=config.backoff_cap_s
        )
        self.breaker = CircuitBreaker(config.breaker_failures, config.breaker_reset_s)
        self.breaker.on_transition = self._on_breaker
        self.stats = CallStats()
        self._rng = random.Random(seed)
        self.in_flight = 0
        self.max_in_flight = 0

    # -- subclass hooks -------------------------------------------------------------------------------------
    @abc.abstractmethod
    async def _generate(self, report: str) -> Generation:
        """One attempt for one report (uses :meth:`_post`)."""

    @abc.abstractmethod
    async def ready(self) -> bool: ...

    # -- HTTP -----------------------------------------------------------------------------------------------
    async def _post(self, path: str, payload: dict[str, Any]) -> Any:
        """POST JSON inside a concurrency slot; non-2xx and transport failures become typed errors."""
        async with self._slots:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                response = await self._http.post(path, json=payload)
            except httpx.TimeoutException:
                raise ServerUnavailable(f"model server timed out (>{self.config.timeout_s}s)") from None
            except httpx.TransportError as exc:
                if _tls_verification_failed(exc):
                    raise ServerMisconfigured(
                        "model server's TLS certificate is not trusted (set ca_bundle to the issuing CA)", 0
                    ) from None
                raise ServerUnavailable(f"cannot reach model server ({type(exc).__name__})") from None
            finally:
                self.in_flight -= 1
        self.stats.by_status[response.status_code] = self.stats.by_status.get(response.status_code, 0) + 1
        if not response.is_success:
            raise classify_status(response.status_code, response.content, response.headers.get("retry-after"))
        try:
            return response.json()
        except ValueError:
            # A 200 that is not JSON comes from a proxy or the wrong URL, not from the model.
            raise ServerMisconfigured("model server answered 200 with a non-JSON body", response.status_code) from None

    async def _get_json(self, path: str, *, strict: bool = False) -> Any | None:
        """GET for health/discovery; None when unreachable or not 2xx. With ``strict``, a refused call
        (401/403) raises ServerMisconfigured instead, so a wrong token is not mistaken for a down server."""
        try:
            response = await self._http.get(path)
        except httpx.HTTPError:
            return None
        if strict and response.status_code in (401, 403):
            status = response.status_code
            raise ServerMisconfigured(f"model server refused GET {path} (HTTP {status})", status)
        if not response.is_success:
            return None
        try:
            data = response.json()
        except ValueError:  # e.g. TGI's /health: 200 with an empty body
            return {}
        return {} if data is None else data

    # -- labeling -------------------------------------------------------------------------------------------
    def _to_label_set(self, gen: Generation) -> LabelSet:
        if gen.prompt_tokens:
            self.stats.prompt_tokens += gen.prompt_tokens
        if gen.completion_tokens:
            self.stats.completion_tokens += gen.completion_tokens
        if gen.finish_reason == "length":
            # A length stop before max_new_tokens means the context was full: the report did not fit.
            if gen.completion_tokens is not None and gen.completion_tokens < self.config.max_new_tokens:
                raise ReportTooLong("prompt left too little context for the answer")
            raise truncated(gen.finish_reason)
        return LabelSet(labels=parse_answer(gen.text), labeler=self.info)

    async def label_one(self, report: str) -> LabelSet:
        """Label one report with retries and the breaker; raises the typed error on failure."""
        gen = await call_resilient(lambda: self._generate(report), self.policy, self.breaker, self.stats, self._rng)
        return self._to_label_set(gen)

    async def _outcome(self, report: str) -> LabelSet | LabelerError:
        try:
            return await self.label_one(report)
        except (AnswerInvalid, ReportTooLong) as exc:
            return exc

    async def label_batch_detailed(self, reports: Sequence[str]) -> list[LabelSet | LabelerError]:
        """Per-report LabelSet, AnswerInvalid or ReportTooLong, in input order.

        Raises LabelerUnavailable for the whole batch as soon as one report cannot be served (after retries or
        with the circuit open): the other requests are cancelled, nothing is dropped, and the connector
        retries the batch later (backpressure).
        """
        if not reports:
            return []
        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(self._outcome(report)) for report in reports]
        except BaseExceptionGroup as eg:
            unavailable = [e for e in eg.exceptions if isinstance(e, LabelerUnavailable)]
            if unavailable:
                raise unavailable[0] from None
            raise
        return [task.result() for task in tasks]

    def _on_breaker(self, state: BreakerState) -> None:
        log.warning("labeler_circuit", state=state.value, api=self.api)

    async def aclose(self) -> None:
        await self._http.aclose()
