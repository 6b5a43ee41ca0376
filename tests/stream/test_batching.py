"""Reports are labeled across records: one labeler call covers many records of a poll batch, in chunks of at
most 32, with no more than labeler.max_concurrency calls in flight."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from mappings.labels import Labeler, LabelSet

from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, LabelerSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .kafka_io import Tail, publish

N = 150


class RecordingLabeler(Labeler):
    """The real rule labeler, with each call's size and the calls in flight recorded."""

    def __init__(self) -> None:
        self.inner = RuleLabeler()
        self.info = self.inner.info
        self.sizes: list[int] = []
        self.in_flight = 0
        self.max_in_flight = 0

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        self.sizes.append(len(reports))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.01)  # a model server would yield here too
            return await self.inner.label_batch(reports)
        finally:
            self.in_flight -= 1


async def test_label_calls_span_records_chunked_and_bounded(kafka: KafkaSettings) -> None:
    await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(N)])
    labeler = RecordingLabeler()
    settings = Settings(kafka=kafka.model_copy(update={"max_batch": 100}),
                        labeler=LabelerSettings(max_concurrency=2))
    app = StreamApp(settings, labeler, http_port=-1)
    task = asyncio.create_task(app.run())
    tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
    try:
        assert await tail.wait_for(lambda r: len(r) >= N, 30)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
        await tail.close()
    print(f"\nlabel call sizes: {labeler.sizes}, max in flight {labeler.max_in_flight}")
    assert sum(labeler.sizes) == N
    assert max(labeler.sizes) > 1, "reports of several records share one labeler call"
    assert max(labeler.sizes) <= 32
    assert 1 < labeler.max_in_flight <= 2
