"""Helpers for the sink's streaming tests: publish output records (key, value, headers), run a SinkApp in-process,
wait for the group's commits, read what the server holds."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence

import httpx
from aiokafka import AIOKafkaProducer

from connector.settings import KafkaSettings, Settings, SinkSettings
from connector.sink.app import SinkApp

from tests.sink.bundles import ACC_SYSTEM
from tests.sink.conftest import Medplum, Topics
from tests.stream.kafka_io import committed

Record = tuple[bytes, bytes, list[tuple[str, bytes]]]


async def publish_records(bootstrap: str, topic: str, records: Sequence[Record], *,
                          partition: int | None = None, rate: float | None = None) -> dict[int, int]:
    """Publish in order (acks=all); the end offset per partition."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1_048_576)
    await producer.start()
    ends: dict[int, int] = {}
    try:
        started = time.monotonic()
        for i, (key, value, headers) in enumerate(records):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            meta = await (await producer.send(topic, value, key=key, headers=headers, partition=partition))
            ends[meta.partition] = max(ends.get(meta.partition, 0), meta.offset + 1)
    finally:
        await producer.stop()
    return ends


def sink_settings(topics: Topics, medplum: Medplum, **sink) -> Settings:
    kafka = KafkaSettings(bootstrap_servers=topics.bootstrap, output_topic=topics.topic, session_timeout_ms=6000,
                          max_batch=32)
    defaults = dict(fhir_url=medplum.url, group_id=topics.group, dead_letter_topic=topics.dead_letter,
                    backoff_s=0.02, backoff_max_s=0.2, max_retries=2, conditional_references="sink")
    return Settings(kafka=kafka, sink=SinkSettings(**{**defaults, **sink}), http_port=-1)


@contextlib.asynccontextmanager
async def running(settings: Settings, **kw):
    app = SinkApp(settings, outage_backoff_s=0.1, outage_backoff_max_s=0.5, **kw)
    task = asyncio.create_task(app.run())
    try:
        yield app
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)


async def wait_committed(topics: Topics, ends: dict[int, int], timeout_s: float = 60.0) -> dict[int, int]:
    deadline = time.monotonic() + timeout_s
    while True:
        now = await committed(topics.bootstrap, topics.group, topics.topic, 3)
        if all(now.get(p, 0) >= end for p, end in ends.items()):
            return now
        if time.monotonic() > deadline:
            raise AssertionError(f"not committed in time: {now} < {ends}")
        await asyncio.sleep(0.2)


async def until(predicate, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


def labels(medplum: Medplum, accession: str) -> dict[str, tuple[str, str]]:
    """Our label Observations of an accession: finding -> (status, presence code)."""
    found = medplum.search("Observation", identifier=f"{ACC_SYSTEM}|{accession}")
    return {o["code"]["text"]: (o["status"], o["valueCodeableConcept"]["coding"][0]["code"]) for o in found}


def live(medplum: Medplum, accession: str) -> dict[str, str]:
    return {k: code for k, (status, code) in labels(medplum, accession).items() if status != "entered-in-error"}


async def probe(app: SinkApp, path: str) -> int:
    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{app.http.port}{path}")).status_code
