"""Map HTTP outcomes from model servers onto the labeler error types the connector understands.

- :class:`mappings.labels.LabelerUnavailable` (transient: 429, 5xx, connection/timeouts, circuit open): the connector
  applies backpressure and retries the batch later; nothing is dropped.
- :class:`mappings.labels.ReportTooLong` (prompt does not fit the context): per report, never truncated silently.
- :class:`mappings.labels.AnswerInvalid` (answer not valid under the schema, or cut by max_tokens): per report.

Exception messages carry status codes and categories only, never server bodies: some servers echo the prompt
in their errors and the prompt holds report text (PHI).
"""

from __future__ import annotations

import json
import re

from mappings.labels import AnswerInvalid, LabelerError, LabelerUnavailable, ReportTooLong

# Status codes worth retrying: overload, server errors and gateway errors. TGI answers 429 "Model is overloaded"
# when --max-concurrent-requests is exceeded and 424 when generation failed on a shard.
RETRYABLE_STATUS = frozenset({408, 424, 425, 429, 500, 502, 503, 504})

# How servers say "prompt longer than the context", seen in their sources/docs:
#   TGI 422 validation: "`inputs` tokens + `max_new_tokens` must be <= 2048"
#                       / "`inputs` must have less than 1024 tokens"
#   llama-cpp-python 400: "Requested tokens (2100) exceed context window of 2048"
#   llama.cpp server 400: "the request exceeds the available context size" / "exceed_context_size_error"
#   vLLM 400: "This model's maximum context length is 2048 tokens. However, you requested ..."
#   OpenAI 400: code "context_length_exceeded"
_CONTEXT_PATTERNS = re.compile(
    r"context[ _](length|window|size)|maximum context|exceed_context|context_length_exceeded"
    r"|`inputs` tokens \+ `max_new_tokens`|`inputs` must have less than|prompt is too long|too many tokens",
    re.IGNORECASE,
)


class ServerUnavailable(LabelerUnavailable):
    """A transient transport or HTTP failure (after retries)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class CircuitOpen(LabelerUnavailable):
    """The circuit breaker is open: the server failed repeatedly, calls fail fast until the reset timeout."""


class ServerMisconfigured(LabelerUnavailable):
    """401/403/404/405: wrong token, URL or model name. Not retried per request (it cannot succeed), but it is
    batch-wide and not the report's fault, so the connector holds the stream (backpressure) instead of
    dead-lettering every report; the circuit breaker stops the hammering and readiness reports it."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class RequestRejected(AnswerInvalid):
    """Any other 4xx for one report: like an invalid answer, no label can come from it (per report)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _error_text(body: bytes) -> str:
    """The server's error message (JSON `error`, `message`, `detail`, or raw text), for classification only."""
    text = body.decode("utf-8", errors="replace")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return text
    parts: list[str] = []

    def walk(value: object) -> None:
        if isinstance(value, str):
            parts.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(data)
    return " ".join(parts)


def is_context_exceeded(body: bytes) -> bool:
    return bool(_CONTEXT_PATTERNS.search(_error_text(body)))


def parse_retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (HTTP-date form is not used by model servers; ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_status(status: int, body: bytes, retry_after: str | None = None) -> LabelerError:
    """The typed error for a non-2xx response."""
    if status in (400, 413, 422) and is_context_exceeded(body):
        return ReportTooLong(f"server rejected the prompt as longer than the model context (HTTP {status})")
    if status in RETRYABLE_STATUS:
        return ServerUnavailable(f"model server answered HTTP {status}", status, parse_retry_after(retry_after))
    if status in (401, 403, 404, 405):
        return ServerMisconfigured(f"model server refused the call (HTTP {status}): check endpoint/token/model", status)
    return RequestRejected(f"model server rejected the request (HTTP {status})", status)


def truncated(finish_reason: str | None) -> AnswerInvalid:
    return AnswerInvalid(f"answer cut by the token limit (finish_reason={finish_reason}); raise max_new_tokens")
