"""Test-side Kafka helpers: publish inputs, read topics back, read a group's committed offsets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition


@dataclass(frozen=True)
class Sent:
    partition: int
    offset: int
    value: bytes


@dataclass(frozen=True)
class Received:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]

    @property
    def source(self) -> tuple[int, int]:
        return int(self.headers["source-partition"]), int(self.headers["source-offset"])


async def publish(bootstrap: str, topic: str, values: Sequence[bytes], *, rate: float | None = None,
                  max_request_size: int = 16 * 1_048_576, timestamps_ms: Sequence[int] | None = None) -> list[Sent]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", max_request_size=max_request_size)
    await producer.start()
    try:
        futures = []
        started = time.monotonic()
        for i, value in enumerate(values):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            stamp = timestamps_ms[i] if timestamps_ms is not None else None
            futures.append(await producer.send(topic, value, timestamp_ms=stamp))
        metas = await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return [Sent(m.partition, m.offset, v) for m, v in zip(metas, values)]


async def read_all(bootstrap: str, topics: Sequence[str], *, until: Callable[[list[Received]], bool],
                   timeout_s: float = 60.0) -> list[Received]:
    """Read the topics from the beginning (no group) until ``until(records)`` holds or the timeout passes."""
    consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_bytes=64 * 1_048_576,
                                max_partition_fetch_bytes=32 * 1_048_576)
    await consumer.start()
    out: list[Received] = []
    try:
        deadline = time.monotonic() + timeout_s
        while not until(out) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for records in batch.values():
                for r in records:
                    out.append(Received(r.topic, r.partition, r.offset, r.key, r.value,
                                        {k: v.decode() for k, v in r.headers}))
    finally:
        await consumer.stop()
    return out


async def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """The group's committed offset per partition (0 when none)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        out = {}
        for p in range(partitions):
            out[p] = (await consumer.committed(TopicPartition(topic, p))) or 0
        return out
    finally:
        await consumer.stop()


def end_offsets(sent: Sequence[Sent]) -> dict[int, int]:
    ends: dict[int, int] = {}
    for s in sent:
        ends[s.partition] = max(ends.get(s.partition, 0), s.offset + 1)
    return ends


class Tail:
    """Background reader of topics from the beginning; ``records`` grows as they arrive."""

    def __init__(self, bootstrap: str, topics: Sequence[str]) -> None:
        self.records: list[Received] = []
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._run(bootstrap, topics))

    async def _run(self, bootstrap: str, topics: Sequence[str]) -> None:
        consumer = AIOKafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            while not self._stop.is_set():
                batch = await consumer.getmany(timeout_ms=100)
                for records in batch.values():
                    self.records.extend(Received(r.topic, r.partition, r.offset, r.key, r.value,
                                                 {k: v.decode() for k, v in r.headers}) for r in records)
        finally:
            await consumer.stop()

    async def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not predicate(self.records):
            if time.monotonic() > deadline or self._task.done():
                return False
            await asyncio.sleep(0.05)
        return True

    async def close(self) -> None:
        self._stop.set()
        await self._task
