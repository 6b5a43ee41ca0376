"""Two connector instances in one consumer group share the partitions; together they convert every input."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .kafka_io import Tail, publish

N = 120


async def test_two_instances_split_the_partitions(kafka: KafkaSettings) -> None:
    labelers = [RuleLabeler(), RuleLabeler()]
    apps = [StreamApp(Settings(kafka=kafka), labeler, http_port=-1) for labeler in labelers]
    tasks = [asyncio.create_task(app.run()) for app in apps]
    tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
    try:
        for _ in range(200):  # both members hold partitions before the data arrives
            if all(app.consumer.assignment() for app in apps):
                break
            await asyncio.sleep(0.05)
        assignments = [app.consumer.assignment() for app in apps]
        assert all(assignments) and not set.intersection(*map(set, assignments))
        sent = await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(N)])
        inputs = {(s.partition, s.offset) for s in sent}
        assert await tail.wait_for(lambda r: inputs <= {x.source for x in r}, 60)
    finally:
        for app in apps:
            app.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await tail.close()
        for labeler in labelers:
            await labeler.aclose()
    consumed = [app.metrics.consumed._value.get() for app in apps]
    assert all(c > 0 for c in consumed) and sum(consumed) == N, consumed
    copies: dict[tuple[int, int], set[bytes]] = defaultdict(set)
    for record in tail.records:
        copies[record.source].add(record.value)
    assert set(copies) == inputs and all(len(v) == 1 for v in copies.values())
