"""The duplicate window made visible: a connector dies after its outputs are acknowledged but before the
commit; its successor replays the batch. Every input still has an output, and the replayed records are
byte-identical to the first copies (what makes downstream effectively-once)."""

from __future__ import annotations

import asyncio
from collections import defaultdict

import pytest

from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .kafka_io import Tail, committed, end_offsets, publish


class CrashBeforeCommit(RuntimeError):
    pass


async def test_crash_between_ack_and_commit_replays_identically(kafka: KafkaSettings) -> None:
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(50)])
    tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
    labeler = RuleLabeler()
    try:
        first = StreamApp(Settings(kafka=kafka), labeler, http_port=-1)

        async def die(*args: object, **kwargs: object) -> None:
            raise CrashBeforeCommit  # as if the process were killed right after the acks arrived

        first.consumer.commit = die  # type: ignore[method-assign]
        with pytest.raises(CrashBeforeCommit):
            await asyncio.wait_for(first.run(), 30)
        assert await tail.wait_for(lambda r: len(r) >= 1, 10)
        assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {0: 0, 1: 0, 2: 0}

        second = StreamApp(Settings(kafka=kafka), labeler, http_port=-1)
        task = asyncio.create_task(second.run())
        inputs = {(s.partition, s.offset) for s in sent}
        assert await tail.wait_for(lambda r: inputs <= {x.source for x in r}, 30)
        # Outputs are on the broker before their commit; and a commit that fails during a rebalance (the first
        # member's leave still settling on a loaded broker) is made good by the replay after it. Wait for the
        # group to catch up instead of stopping at the first sight of the outputs.
        expected = {p: end_offsets(sent).get(p, 0) for p in range(3)}
        for _ in range(60):
            if await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == expected:
                break
            await asyncio.sleep(0.5)
        second.request_stop()
        await asyncio.wait_for(task, 30)
    finally:
        await tail.close()
        await labeler.aclose()

    copies: dict[tuple[int, int], set[bytes]] = defaultdict(set)
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for record in tail.records:
        copies[record.source].add((record.key or b"") + b"\0" + record.value)
        counts[record.source] += 1
    duplicated = [source for source, n in counts.items() if n > 1]
    print(f"\nreplay: inputs={len(inputs)} outputs={len(tail.records)} replayed inputs={len(duplicated)}")
    assert duplicated, "the crashed batch must have been replayed"
    assert set(copies) == inputs
    assert all(len(v) == 1 for v in copies.values()), "a replayed record differs from the first copy"
    assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {
        p: end_offsets(sent).get(p, 0) for p in range(3)}
