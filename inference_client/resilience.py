"""Retries with jittered exponential backoff and a circuit breaker, independent of HTTP.

The breaker counts *transient* failures only (LabelerUnavailable): a model answer that is invalid or a report that
is too long proves the server is alive. States: closed (normal) -> open after ``failure_threshold`` consecutive
transient failures (calls fail fast with CircuitOpen, no network) -> half-open after ``reset_timeout_s`` (a limited
number of probe calls pass; one success closes, one failure re-opens).
"""

from __future__ import annotations

import asyncio
import enum
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import structlog

from mappings.labels import LabelerUnavailable

from inference_client.errors import CircuitOpen, ServerMisconfigured, ServerUnavailable

T = TypeVar("T")
log = structlog.get_logger("inference_client")


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 4  # retries after the first attempt
    base_s: float = 0.25
    cap_s: float = 8.0
    # A server's Retry-After is honoured up to this bound, so one bad header cannot stall the stream.
    max_retry_after_s: float = 30.0

    def delay(self, retry: int, rng: random.Random, retry_after: float | None = None) -> float:
        """Full-jitter backoff for retry number ``retry`` (0-based): uniform(0, min(cap, base * 2**retry)).

        Full jitter spreads the retries of many concurrent requests, so a recovering server is not hit by a
        synchronised wave.
        """
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_s)
        return rng.uniform(0.0, min(self.cap_s, self.base_s * (2**retry)))


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        half_open_max_calls: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be >= 1")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self.half_open_max_calls = half_open_max_calls
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probes = 0
        self.transitions: list[BreakerState] = []  # history, for metrics and tests
        self.on_transition: Callable[[BreakerState], None] | None = None
        self._changed: asyncio.Event | None = None

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() - self._opened_at >= self.reset_timeout_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def _set(self, state: BreakerState) -> None:
        if state is self._state:
            return
        self._state = state
        if state is BreakerState.HALF_OPEN:
            self._probes = 0
        self.transitions.append(state)
        self._notify()
        if self.on_transition is not None:
            self.on_transition(state)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = None

    async def acquire(self) -> None:
        """Like :meth:`before_call`, but while a half-open probe is in flight, wait for its outcome instead of
        failing: after a restart the first batch is then served once the probe succeeds."""
        while True:
            if self.state is not BreakerState.HALF_OPEN or self._probes < self.half_open_max_calls:
                self.before_call()
                return
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def before_call(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        state = self.state
        if state is BreakerState.OPEN:
            remaining = self.reset_timeout_s - (self._clock() - self._opened_at)
            raise CircuitOpen(f"circuit open after repeated model server failures; next probe in {remaining:.1f}s")
        if state is BreakerState.HALF_OPEN:
            if self._probes >= self.half_open_max_calls:
                raise CircuitOpen("circuit half-open: a probe call is in flight")
            self._probes += 1

    def record_success(self) -> None:
        self._failures = 0
        self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._trip()
            return
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._trip()

    def release(self) -> None:
        """A call ended without telling anything about the server (cancelled): free its half-open probe slot."""
        if self._state is BreakerState.HALF_OPEN and self._probes > 0:
            self._probes -= 1
            self._notify()

    def _trip(self) -> None:
        self._opened_at = self._clock()
        self._failures = 0
        self._set(BreakerState.OPEN)


@dataclass
class CallStats:
    """Counters for metrics, the benchmark and tests (no report content)."""

    attempts: int = 0
    retries: int = 0
    transient_failures: int = 0
    fast_failures: int = 0  # rejected by the open circuit without a network call
    prompt_tokens: int = 0
    completion_tokens: int = 0
    by_status: dict[int, int] = field(default_factory=dict)


async def call_resilient(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    breaker: CircuitBreaker,
    stats: CallStats,
    rng: random.Random,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``attempt`` with retries on ServerUnavailable, guarded by ``breaker``.

    Only LabelerUnavailable outcomes count as breaker failures; any other outcome (a LabelSet, AnswerInvalid,
    ReportTooLong) counts as success. The breaker is consulted before every retry, so an open circuit ends a
    retry loop early instead of waiting out all retries against a dead server.
    """
    retry = 0
    while True:
        try:
            await breaker.acquire()
        except CircuitOpen:
            stats.fast_failures += 1
            raise
        stats.attempts += 1
        try:
            result = await attempt()
        except ServerMisconfigured:
            breaker.record_failure()
            raise
        except LabelerUnavailable as exc:
            stats.transient_failures += 1
            breaker.record_failure()
            if retry >= policy.max_retries:
                raise
            retry_after = exc.retry_after if isinstance(exc, ServerUnavailable) else None
            delay = policy.delay(retry, rng, retry_after)
            log.info(
                "labeler_retry",
                retry=retry + 1,
                status=getattr(exc, "status", None),
                error=type(exc).__name__,
                delay_s=round(delay, 3),
            )
            await sleep(delay)
            retry += 1
            stats.retries += 1
            continue
        except (asyncio.CancelledError, KeyboardInterrupt):
            breaker.release()
            raise
        except Exception:
            # AnswerInvalid / ReportTooLong: about this report; the server itself answered.
            breaker.record_success()
            raise
        breaker.record_success()
        return result
