"""Fixtures for the MLLP gateway tests: the streaming tests' real Tansu broker and fresh topics, and an in-process
gateway on a free loopback port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest

from connector.mllp.gateway import MllpGateway
from connector.settings import KafkaSettings, MllpSettings, Settings
from tests.stream.conftest import broker, kafka, log_capture  # noqa: F401 - the same real-broker fixtures

GatewayFactory = Callable[..., Any]


@contextlib.asynccontextmanager
async def running_gateway(kafka: KafkaSettings, **mllp: Any) -> AsyncIterator[MllpGateway]:
    settings = Settings(kafka=kafka, mllp=MllpSettings(**{"host": "127.0.0.1", "port": 0, **mllp}))
    gateway = MllpGateway(settings, http_port=0, http_host="127.0.0.1")
    task = asyncio.create_task(gateway.run())
    try:
        for _ in range(400):
            if gateway.started or task.done():
                break
            await asyncio.sleep(0.025)
        if task.done():
            task.result()
        assert gateway.started, "gateway did not start"
        yield gateway
    finally:
        gateway.request_stop()
        await asyncio.wait_for(task, 30)
