"""Connecting to the Kafka cluster at start-up: retry with backoff for a while, then one clear error.

A broker that is still starting (a Kubernetes rollout, docker compose) is normal for a few seconds; a wrong
address or a cluster that stays down is not, and must end the process with a message naming the address rather
than a traceback or an endless retry loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from aiokafka.errors import KafkaConnectionError

from connector.logging import get_logger

log = get_logger(__name__)


class BrokerUnavailable(Exception):
    """No broker of ``bootstrap_servers`` answered within ``kafka.connect_retry_s``."""


async def start_with_retry(start: Callable[[], Awaitable[None]], *, address: str, retry_s: float,
                           stop: asyncio.Event | None = None, first_delay_s: float = 0.5,
                           max_delay_s: float = 10.0) -> None:
    deadline = time.monotonic() + retry_s
    delay = first_delay_s
    attempt = 0
    while True:
        attempt += 1
        try:
            await start()
            return
        except KafkaConnectionError:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or (stop is not None and stop.is_set()):
                raise BrokerUnavailable(
                    f"Kafka broker {address} unreachable ({attempt} attempts over {retry_s:g} s): check "
                    "kafka.bootstrap_servers (--bootstrap-servers) and that the broker is up; "
                    "kafka.connect_retry_s sets how long to keep trying"
                ) from None
            wait = min(delay, remaining)
            log.warning("broker_unreachable", attempt=attempt, retry_in_s=round(wait, 2))
            await asyncio.sleep(wait)
            delay = min(max_delay_s, delay * 2)
