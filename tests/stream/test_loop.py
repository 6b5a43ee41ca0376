"""The shared consume -> act -> commit-after-ack loop with an act that is not `run`'s: it is what `sink` and
`replay` build on, so its contract is tested on its own, on the real broker. A downstream outage (the act raises
one of `holds`) holds the batch, pauses, commits nothing past it, and retries the same records in order; an act
error that is not a hold stops the program without committing the batch."""

from __future__ import annotations

import asyncio

import pytest

from connector.settings import KafkaSettings
from connector.stream.loop import ConsumeLoop
from connector.stream.process import InputRecord

from .kafka_io import committed, publish


class DownstreamDown(Exception):
    pass


class Recorder(ConsumeLoop):
    holds = (DownstreamDown,)
    hold_reason = "test downstream unavailable"

    def __init__(self, kafka: KafkaSettings, *, down: bool = False, explode_at: int | None = None) -> None:
        super().__init__(kafka, topics=[kafka.input_topic], http_port=-1, outage_backoff_s=0.05,
                         outage_backoff_max_s=0.2)
        self.down = down
        self.explode_at = explode_at
        self.calls: list[list[tuple[int, int]]] = []
        self.done: list[tuple[int, int]] = []

    async def act(self, inputs: list[InputRecord]) -> None:
        self.calls.append([(r.partition, r.offset) for r in inputs])
        if self.down:
            raise DownstreamDown
        if self.explode_at is not None and any(r.offset >= self.explode_at for r in inputs):
            raise RuntimeError("bug in act")
        self.done.extend((r.partition, r.offset) for r in inputs)


async def _until(cond, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


async def test_hold_pauses_then_retries_the_same_batch_and_commits_after(kafka: KafkaSettings) -> None:
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, [f"m{i}".encode() for i in range(30)])
    loop = Recorder(kafka, down=True)
    task = asyncio.create_task(loop.run())
    try:
        await _until(lambda: len(loop.calls) >= 2)
        assert loop.paused and (await loop.ready()) == (False, "paused: test downstream unavailable")
        assert loop.metrics.paused._value.get() == 1
        # Held: nothing committed while the downstream is down.
        assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {0: 0, 1: 0, 2: 0}
        held = len(loop.calls)
        loop.down = False
        await _until(lambda: {(s.partition, s.offset) for s in sent} <= set(loop.done))
        await _until(lambda: not loop.paused)
    finally:
        loop.request_stop()
        await asyncio.wait_for(task, 30)
    # The held batch was retried as the same records, not skipped past.
    assert held >= 2 and all(call == loop.calls[0] for call in loop.calls[: held + 1])
    assert len(loop.done) == len(set(loop.done)) == 30
    ends: dict[int, int] = {}
    for s in sent:
        ends[s.partition] = max(ends.get(s.partition, 0), s.offset + 1)
    assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {
        p: ends.get(p, 0) for p in range(3)}


async def test_an_act_error_stops_the_program_without_committing_its_batch(kafka: KafkaSettings) -> None:
    await publish(kafka.bootstrap_servers, kafka.input_topic, [f"m{i}".encode() for i in range(5)])
    loop = Recorder(kafka, explode_at=0)
    with pytest.raises(RuntimeError, match="bug in act"):
        await asyncio.wait_for(loop.run(), 30)
    assert not (await loop.live())[0]
    assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {0: 0, 1: 0, 2: 0}


class WindowRecorder(ConsumeLoop):
    def __init__(self, kafka: KafkaSettings, window: dict, group: str) -> None:
        super().__init__(kafka, topics=[kafka.input_topic], http_port=-1, group_id=group, window=window)
        self.done: list[tuple[int, int]] = []

    async def act(self, inputs: list[InputRecord]) -> None:
        self.done.extend((r.partition, r.offset) for r in inputs)


async def test_a_window_is_read_to_its_end_in_its_own_group_and_resumes(kafka: KafkaSettings) -> None:
    """Manual assignment (replay): exactly the window, then the loop ends by itself; progress is committed to the
    loop's own group only; a second run with a wider window acts only on what the first did not."""
    from aiokafka import TopicPartition

    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, [f"m{i}".encode() for i in range(60)])
    ends: dict[int, int] = {}
    for s in sent:
        ends[s.partition] = max(ends.get(s.partition, 0), s.offset + 1)
    tps = {p: TopicPartition(kafka.input_topic, p) for p in range(3)}
    narrow = {tps[p]: (min(2, ends.get(p, 0)), max(min(2, ends.get(p, 0)), ends.get(p, 0) - 3)) for p in range(3)}
    first = WindowRecorder(kafka, narrow, "window-group")
    await asyncio.wait_for(first.run(), 30)  # ends by itself
    assert first.complete
    expected = {(tp.partition, o) for tp, (a, b) in narrow.items() for o in range(a, b)}
    assert sorted(first.done) == sorted(expected)
    assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {0: 0, 1: 0, 2: 0}
    mine = await committed(kafka.bootstrap_servers, "window-group", kafka.input_topic, 3)
    assert all(mine[tp.partition] == b for tp, (a, b) in narrow.items() if b > a)
    wide = {tp: (a, ends.get(tp.partition, 0)) for tp, (a, _) in narrow.items()}
    second = WindowRecorder(kafka, wide, "window-group")
    await asyncio.wait_for(second.run(), 30)
    assert second.complete
    assert sorted(second.done) == sorted({(tp.partition, o) for tp, (_, b) in narrow.items()
                                          for o in range(b, ends.get(tp.partition, 0))})


class Probed(ConsumeLoop):
    """A loop whose downstream probe is scripted: answers, raises or hangs. No broker is needed: the probe is
    asked by /readyz through downstream_ready, which every program inherits (run: model server, sink: FHIR
    server)."""

    ready_probe_ttl_s = 0.3
    ready_probe_timeout_s = 0.2
    hold_reason = "scripted downstream unavailable"

    def __init__(self, script: list[object]) -> None:
        super().__init__(KafkaSettings(bootstrap_servers="127.0.0.1:9"), topics=["t"], http_port=-1)
        self.script = script
        self.asked = 0

    async def probe_downstream(self) -> tuple[bool, str]:
        step = self.script[min(self.asked, len(self.script) - 1)]
        self.asked += 1
        if step == "hang":
            await asyncio.sleep(10)
        if isinstance(step, BaseException):
            raise step
        return step  # type: ignore[return-value]


async def test_downstream_probe_is_cached_bounded_and_a_failure_is_not_ready() -> None:
    loop = Probed([(True, "ready"), ConnectionError("refused"), "hang", (False, "server answered HTTP 503")])
    try:
        await _scripted_probes(loop)
    finally:  # never started, but their sessions exist
        await loop.consumer.stop()
        await loop.producer.stop()


async def _scripted_probes(loop: Probed) -> None:
    assert await loop.downstream_ready() == (True, "ready")
    for _ in range(5):  # within the TTL: answered from the cache, the downstream is not asked again
        assert await loop.downstream_ready() == (True, "ready")
    assert loop.asked == 1
    await asyncio.sleep(0.35)
    assert await loop.downstream_ready() == (False, "scripted downstream unavailable (ConnectionError)")
    await asyncio.sleep(0.35)
    started = asyncio.get_running_loop().time()
    assert await loop.downstream_ready() == (False, "scripted downstream unavailable (TimeoutError)")
    assert asyncio.get_running_loop().time() - started < 1.0  # bounded: /readyz answers even when the probe hangs
    await asyncio.sleep(0.35)
    assert await loop.downstream_ready() == (False, "server answered HTTP 503")
    assert loop.asked == 4
