"""Static group membership (`kafka.group_instance_id`, KIP-345) against the real broker: a member that stops and
comes back with the same instance id gets its own partitions back, and the other member is not rebalanced.

Without the id (or if the setting stopped reaching aiokafka) the replacement is a new member: its join
rebalances the group, and the survivor's assignment changes. Timings are measured in benchmarks/failover.py.
"""

from __future__ import annotations

import asyncio

from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .kafka_io import Tail, publish

N = 60


async def _wait(predicate, timeout_s: float) -> bool:
    for _ in range(int(timeout_s / 0.05)):
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


async def test_restart_with_same_instance_id_keeps_partitions_without_rebalance(kafka: KafkaSettings) -> None:
    members: list[StreamApp] = []

    def app(instance_id: str) -> StreamApp:
        settings = Settings(kafka=kafka.model_copy(update={"group_instance_id": instance_id}))
        members.append(StreamApp(settings, RuleLabeler(), http_port=-1))
        return members[-1]

    a, b = app("radlabel-0"), app("radlabel-1")
    tasks = {a: asyncio.create_task(a.run())}
    tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
    try:
        assert await _wait(lambda: len(a.consumer.assignment()) == 3, 30), "first member got no partitions"
        tasks[b] = asyncio.create_task(b.run())
        # Settled: each holds partitions, none twice (during the rebalance `a` still reports its old three).
        assert await _wait(lambda: a.consumer.assignment() and b.consumer.assignment()
                           and len(a.consumer.assignment()) + len(b.consumer.assignment()) == 3
                           and len(a.consumer.assignment() | b.consumer.assignment()) == 3, 40)
        # The initial join may take more than one round on a loaded broker (a SyncGroup that fails because the
        # group is rebalancing is retried): count the survivor's rebalances only once they have stopped moving,
        # so that what is measured below is the restart alone.
        rebalances_a = a.metrics.rebalances._value.get()
        for _ in range(60):
            await asyncio.sleep(0.5)
            now = a.metrics.rebalances._value.get()
            if now == rebalances_a:
                break
            rebalances_a = now
        held_a, held_b = set(a.consumer.assignment()), set(b.consumer.assignment())

        # b goes away (a static member sends no LeaveGroup) and comes back with the same instance id.
        b.request_stop()
        await asyncio.wait_for(tasks.pop(b), 30)
        b2 = app("radlabel-1")
        tasks[b2] = asyncio.create_task(b2.run())
        assert await _wait(lambda: bool(b2.consumer.assignment()), 40), "restarted member got no partitions"
        await asyncio.sleep(1.0)  # a rebalance of the survivor, if one were coming, has begun by now
        assert set(b2.consumer.assignment()) == held_b
        assert set(a.consumer.assignment()) == held_a
        assert a.metrics.rebalances._value.get() == rebalances_a, "survivor was rebalanced"

        # And the restarted member consumes: every input has its output.
        sent = await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(N)])
        inputs = {(s.partition, s.offset) for s in sent}
        assert await tail.wait_for(lambda r: inputs <= {x.source for x in r}, 60)
        assert b2.metrics.consumed._value.get() > 0
    finally:
        for member in tasks:
            member.request_stop()
        await asyncio.wait_for(asyncio.gather(*tasks.values(), return_exceptions=True), 30)
        await tail.close()
        for member in members:
            await member.labeler.aclose()
