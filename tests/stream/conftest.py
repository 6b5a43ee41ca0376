"""Fixtures for the streaming tests: one real Tansu broker per session, fresh topics per test."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from connector.logging import configure_logging

from connector.settings import KafkaSettings
from connector.stream.broker import BrokerNotFound, LocalBroker, create_topics


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalBroker]:
    try:
        local = LocalBroker(log_path=Path(tmp_path_factory.mktemp("tansu")) / "tansu.log")
    except BrokerNotFound as exc:  # the broker extra is not installed
        pytest.skip(str(exc))
    with local:
        yield local


@pytest.fixture
async def kafka(broker: LocalBroker) -> KafkaSettings:
    """Settings pointing at fresh topics (3 input partitions) and a fresh group on the session broker."""
    suffix = uuid.uuid4().hex[:8]
    settings = KafkaSettings(
        bootstrap_servers=broker.bootstrap_servers,
        input_topic=f"in-{suffix}",
        output_topic=f"out-{suffix}",
        dead_letter_topic=f"dlq-{suffix}",
        group_id=f"g-{suffix}",
        session_timeout_ms=6000,
        max_batch=32,
    )
    await create_topics(broker.bootstrap_servers,
                        {settings.input_topic: 3, settings.output_topic: 3, settings.dead_letter_topic: 1})
    return settings


@pytest.fixture
def log_capture() -> Iterator[io.StringIO]:
    """The connector's structlog JSON lines, as configured in production, written to a buffer."""
    buffer = io.StringIO()
    configure_logging("DEBUG", json=True)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=buffer))
    yield buffer
    structlog.reset_defaults()
