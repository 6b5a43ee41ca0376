"""Retry policy, circuit breaker state machine and the retry loop, with a fake clock and fake attempts."""

from __future__ import annotations

import asyncio
import random

import pytest

from inference_client.errors import CircuitOpen, ServerMisconfigured, ServerUnavailable
from inference_client.resilience import BreakerState, CallStats, CircuitBreaker, RetryPolicy, call_resilient
from mappings.labels import AnswerInvalid


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_backoff_is_full_jitter_bounded_by_exponential_cap() -> None:
    policy = RetryPolicy(base_s=0.5, cap_s=3.0)
    rng = random.Random(1)
    for retry, bound in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 3.0), (6, 3.0)]:
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert all(0.0 <= d <= bound for d in delays)
        # jitter: the delays spread over the range instead of repeating one value
        assert max(delays) - min(delays) > bound * 0.5


def test_retry_after_is_honoured_but_capped() -> None:
    policy = RetryPolicy(max_retry_after_s=5.0)
    rng = random.Random(0)
    assert policy.delay(0, rng, retry_after=2.0) == 2.0
    assert policy.delay(0, rng, retry_after=120.0) == 5.0


def test_breaker_opens_after_threshold_then_half_opens_and_closes() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=3, reset_timeout_s=10.0, clock=clock)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 9.9
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    clock.now += 0.2
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the one probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()  # a second concurrent call is not let through
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.transitions == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_for_a_full_timeout() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=5.0, clock=clock)
    breaker.record_failure()
    clock.now += 5.0
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now += 4.0
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_success_resets_consecutive_failure_count() -> None:
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=5.0, clock=FakeClock())
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED


class Script:
    """An attempt function that raises/returns a scripted sequence of outcomes."""

    def __init__(self, *outcomes: object) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def _no_sleep(_: float) -> None:
    return None


async def test_transient_failures_are_retried_until_success() -> None:
    attempt = Script(ServerUnavailable("503", 503), ServerUnavailable("conn"), "ok")
    stats = CallStats()
    breaker = CircuitBreaker(failure_threshold=10, clock=FakeClock())
    result = await call_resilient(attempt, RetryPolicy(max_retries=4), breaker, stats, random.Random(0), _no_sleep)
    assert result == "ok"
    assert (attempt.calls, stats.retries, stats.transient_failures) == (3, 2, 2)
    assert breaker.state is BreakerState.CLOSED


async def test_retries_are_bounded() -> None:
    attempt = Script(*[ServerUnavailable("503", 503)] * 10)
    stats = CallStats()
    with pytest.raises(ServerUnavailable):
        await call_resilient(
            attempt, RetryPolicy(max_retries=2), CircuitBreaker(10, clock=FakeClock()), stats, random.Random(0), _no_sleep
        )
    assert attempt.calls == 3


async def test_open_circuit_ends_the_retry_loop_early_and_then_fails_fast() -> None:
    attempt = Script(*[ServerUnavailable("conn")] * 10)
    stats = CallStats()
    breaker = CircuitBreaker(failure_threshold=2, reset_timeout_s=60, clock=FakeClock())
    with pytest.raises(CircuitOpen):
        await call_resilient(attempt, RetryPolicy(max_retries=5), breaker, stats, random.Random(0), _no_sleep)
    assert attempt.calls == 2  # not 6: the breaker opened after the second failure
    with pytest.raises(CircuitOpen):
        await call_resilient(attempt, RetryPolicy(max_retries=5), breaker, stats, random.Random(0), _no_sleep)
    assert attempt.calls == 2 and stats.fast_failures == 2


async def test_retry_sleeps_follow_the_policy() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    attempt = Script(ServerUnavailable("429", 429, retry_after=1.5), ServerUnavailable("503", 503), "ok")
    await call_resilient(
        attempt, RetryPolicy(base_s=0.1, cap_s=1.0), CircuitBreaker(10, clock=FakeClock()), CallStats(), random.Random(0), sleep
    )
    assert slept[0] == 1.5 and 0.0 <= slept[1] <= 0.2


async def test_invalid_answer_is_not_retried_and_counts_as_server_alive() -> None:
    breaker = CircuitBreaker(failure_threshold=2, clock=FakeClock())
    breaker.record_failure()
    attempt = Script(AnswerInvalid("bad"), "unused")
    with pytest.raises(AnswerInvalid):
        await call_resilient(attempt, RetryPolicy(), breaker, CallStats(), random.Random(0), _no_sleep)
    assert attempt.calls == 1
    breaker.record_failure()  # would open if the invalid answer had counted as a failure
    assert breaker.state is BreakerState.CLOSED


async def test_misconfiguration_is_not_retried() -> None:
    attempt = Script(ServerMisconfigured("401", 401), "unused")
    with pytest.raises(ServerMisconfigured):
        await call_resilient(attempt, RetryPolicy(), CircuitBreaker(5, clock=FakeClock()), CallStats(), random.Random(0), _no_sleep)
    assert attempt.calls == 1


async def test_cancelled_probe_frees_the_half_open_slot() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0

    async def hang() -> str:
        await asyncio.sleep(60)
        return "never"

    task = asyncio.create_task(call_resilient(hang, RetryPolicy(), breaker, CallStats(), random.Random(0), _no_sleep))
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert breaker.state is BreakerState.HALF_OPEN
    breaker.before_call()  # the slot is free again


async def test_calls_wait_for_the_half_open_probe_instead_of_failing() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    gate = asyncio.Event()
    order: list[str] = []

    async def probe() -> str:
        await gate.wait()
        order.append("probe")
        return "probe"

    async def follower() -> str:
        order.append("follower")
        return "follower"

    first = asyncio.create_task(call_resilient(probe, RetryPolicy(), breaker, CallStats(), random.Random(0), _no_sleep))
    await asyncio.sleep(0)
    second = asyncio.create_task(
        call_resilient(follower, RetryPolicy(), breaker, CallStats(), random.Random(0), _no_sleep)
    )
    await asyncio.sleep(0.01)
    assert order == []  # the follower waits while the probe is in flight
    gate.set()
    assert await asyncio.gather(first, second) == ["probe", "follower"]
    assert order == ["probe", "follower"] and breaker.state is BreakerState.CLOSED


async def test_waiters_fail_fast_when_the_probe_fails() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(failure_threshold=1, reset_timeout_s=1.0, clock=clock)
    breaker.record_failure()
    clock.now += 1.0
    gate = asyncio.Event()

    async def failing_probe() -> str:
        await gate.wait()
        raise ServerUnavailable("conn")

    async def follower() -> str:
        return "never"

    policy = RetryPolicy(max_retries=0)
    first = asyncio.create_task(call_resilient(failing_probe, policy, breaker, CallStats(), random.Random(0), _no_sleep))
    await asyncio.sleep(0)
    second = asyncio.create_task(call_resilient(follower, policy, breaker, CallStats(), random.Random(0), _no_sleep))
    await asyncio.sleep(0.01)
    gate.set()
    results = await asyncio.gather(first, second, return_exceptions=True)
    assert isinstance(results[0], ServerUnavailable) and isinstance(results[1], CircuitOpen)
