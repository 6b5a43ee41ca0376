"""A window of a topic: per partition, the offsets [start, end) to read. Used by `radlabel replay` (what to
re-label) and `radlabel audit export` (what to read back).

Given by time (``--from/--to``, resolved with the broker's offsets_for_times: the first offset whose record
timestamp is at or after the instant; ``--to`` is exclusive) or by offsets per partition (``--offsets
0=100-200,1=0-``). Unbounded sides are the partition's beginning and its end offset at resolution time, so a
window is fixed once resolved: records appended later are not in it.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from datetime import datetime, timezone

from aiokafka import AIOKafkaConsumer, TopicPartition

_RANGE = re.compile(r"^\s*(\d+)\s*=\s*(\d*)\s*-\s*(\d*)\s*$")


class WindowError(ValueError):
    """A window that cannot be resolved: bad syntax, unknown partition, from after to."""


@dataclass(frozen=True)
class WindowSpec:
    """What the user asked for (unresolved)."""

    start_ms: int | None = None
    end_ms: int | None = None
    offsets: dict[int, tuple[int | None, int | None]] | None = None  # partition -> (start, end), None = open

    def __post_init__(self) -> None:
        if self.offsets is not None and (self.start_ms is not None or self.end_ms is not None):
            raise WindowError("give either --from/--to or --offsets, not both")
        if self.start_ms is not None and self.end_ms is not None and self.start_ms > self.end_ms:
            raise WindowError("--from is after --to")


@dataclass(frozen=True)
class Window:
    topic: str
    ranges: dict[int, tuple[int, int]]  # partition -> [start, end)

    @property
    def total(self) -> int:
        return sum(max(0, end - start) for start, end in self.ranges.values())

    def label(self) -> str:
        """Compact, stable text for headers and logs: ``topic:0=0-120,1=5-98`` (PHI-free)."""
        return f"{self.topic}:" + ",".join(f"{p}={s}-{e}" for p, (s, e) in sorted(self.ranges.items()))

    def partitions(self) -> list[TopicPartition]:
        return [TopicPartition(self.topic, p) for p in sorted(self.ranges)]


def parse_time(text: str) -> int:
    """ISO 8601 (UTC when no offset) -> epoch milliseconds."""
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise WindowError(f"not an ISO 8601 time: {text!r} (e.g. 2025-01-01T00:00:00+00:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def parse_offsets(text: str) -> dict[int, tuple[int | None, int | None]]:
    """``0=100-200,1=0-`` -> {0: (100, 200), 1: (0, None)}; an empty side is open."""
    out: dict[int, tuple[int | None, int | None]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        match = _RANGE.match(part)
        if not match:
            raise WindowError(f"bad offset range {part!r} (PARTITION=START-END, e.g. 0=100-200 or 1=0-)")
        partition, start, end = int(match[1]), match[2], match[3]
        lo, hi = (int(start) if start else None), (int(end) if end else None)
        if lo is not None and hi is not None and lo > hi:
            raise WindowError(f"offset range {part!r} ends before it starts")
        out[partition] = (lo, hi)
    if not out:
        raise WindowError("--offsets names no partition")
    return out


def spec(from_: str | None = None, to: str | None = None, offsets: str | None = None) -> WindowSpec:
    return WindowSpec(parse_time(from_) if from_ else None, parse_time(to) if to else None,
                      parse_offsets(offsets) if offsets else None)


async def resolve(consumer: AIOKafkaConsumer, topic: str, want: WindowSpec) -> Window:
    """The offsets of ``want`` on the broker now (the consumer must be started; it needs no group)."""
    parts = consumer.partitions_for_topic(topic)
    if not parts:
        parts = await _partitions(consumer, topic)
    tps = [TopicPartition(topic, p) for p in sorted(parts)]
    begin = await consumer.beginning_offsets(tps)
    end = await _high_watermarks(consumer, tps, begin)
    ranges: dict[int, tuple[int, int]] = {}
    if want.offsets is not None:
        unknown = sorted(set(want.offsets) - set(parts))
        if unknown:
            raise WindowError(f"topic {topic} has no partition {unknown[0]} (it has {len(parts)})")
        for p, (lo, hi) in want.offsets.items():
            tp = TopicPartition(topic, p)
            start = max(begin[tp], lo if lo is not None else begin[tp])
            stop = min(end[tp], hi if hi is not None else end[tp])
            ranges[p] = (start, max(start, stop))
        return Window(topic, ranges)
    starts = await _at(consumer, tps, want.start_ms, begin, end)
    stops = await _at(consumer, tps, want.end_ms, end, end)
    for tp in tps:
        ranges[tp.partition] = (starts[tp], max(starts[tp], stops[tp]))
    return Window(topic, ranges)


async def _at(consumer: AIOKafkaConsumer, tps: list[TopicPartition], when_ms: int | None,
              default: dict[TopicPartition, int], end: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    if when_ms is None:
        return {tp: default[tp] for tp in tps}
    found = await consumer.offsets_for_times({tp: when_ms for tp in tps})
    out: dict[TopicPartition, int] = {}
    for tp in tps:
        hit = found.get(tp)
        if hit is None:  # no record at or after the instant: the window side is the partition's end
            out[tp] = end[tp]
        elif await _timestamp_at(consumer, tp, hit.offset) == hit.timestamp:
            out[tp] = hit.offset
        else:
            # The broker answered with a timestamp its record does not have: no time index (Tansu 0.6 answers
            # every query with offset 0 and the current time). Find the first record at or after the instant by
            # reading the partition's timestamps, which is what a time index answers.
            out[tp] = await _scan(consumer, tp, when_ms, end[tp])
    consumer.assign([])
    return out


async def _high_watermarks(consumer: AIOKafkaConsumer, tps: list[TopicPartition],
                           begin: dict[TopicPartition, int]) -> dict[TopicPartition, int]:
    """End offsets as a fetch reports them (the high watermark, the number the lag metric uses). ListOffsets
    "latest" should say the same; Tansu 0.6 answers it with the last batch's base offset + 1, which would cut a
    window short. One small fetch per partition."""
    listed = await consumer.end_offsets(tps)
    consumer.assign(tps)
    for tp in tps:
        consumer.seek(tp, begin[tp])
    out: dict[TopicPartition, int] = {}
    deadline = asyncio.get_running_loop().time() + 10
    while len(out) < len(tps) and asyncio.get_running_loop().time() < deadline:
        await consumer.getmany(*[tp for tp in tps if tp not in out], timeout_ms=200, max_records=1)
        for tp in tps:
            high = consumer.highwater(tp)
            if high is not None and tp not in out:
                out[tp] = high
    consumer.assign([])
    return {tp: max(listed[tp], out.get(tp, listed[tp])) for tp in tps}


async def _timestamp_at(consumer: AIOKafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
    consumer.assign([tp])
    consumer.seek(tp, offset)
    batch = await consumer.getmany(tp, timeout_ms=5000, max_records=1)
    records = batch.get(tp) or []
    return records[0].timestamp if records and records[0].offset == offset else None


async def _scan(consumer: AIOKafkaConsumer, tp: TopicPartition, when_ms: int, end: int) -> int:
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    while await consumer.position(tp) < end:
        batch = await consumer.getmany(tp, timeout_ms=5000, max_records=5000)
        records = batch.get(tp) or []
        if not records:
            break
        for record in records:
            if record.offset >= end:
                return end
            if record.timestamp >= when_ms:
                return record.offset
    return end


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    # The consumer's own metadata covers what it is assigned; ask the cluster for every topic instead. aiokafka
    # has no public call that returns partitions from a full refresh (consumer.topics() returns names only).
    for _ in range(20):
        metadata = await consumer._client.fetch_all_metadata()  # noqa: SLF001
        parts = metadata.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await asyncio.sleep(0.1)
    raise WindowError(f"topic {topic} does not exist on the broker")
