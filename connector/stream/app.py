"""`radlabel run`: input topic -> parse -> label (batched) -> FHIR Bundle -> output topic, as the `act` of the
shared consume loop (connector/stream/loop.py: delivery, backpressure, health, lag).

The act produces every output and dead-letter record of the batch with acks=all and returns when the broker has
acknowledged all of them; the loop commits only then. When the labeler stays unavailable after its retries
(LabelerUnavailable), the loop holds the batch and pauses; nothing is dropped or mislabeled.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence

from aiokafka import TopicPartition
from mappings.labels import Labeler, LabelerUnavailable

from connector.logging import get_logger
from connector.settings import Settings
from connector.stream.labeling import BatchLabeler
from connector.stream.loop import ConsumeLoop
from connector.stream.metrics import Metrics
from connector.stream.process import InputRecord, Outcome, process_batch

log = get_logger(__name__)

# Reports per labeler call: large enough to batch well on a model server, small enough that one slow call does
# not hold a whole poll batch (max_batch records) hostage.
LABEL_CHUNK = 32


class StreamApp(ConsumeLoop):
    holds = (LabelerUnavailable,)
    hold_reason = "labeler unavailable"
    program = "connector"

    def __init__(self, settings: Settings, labeler: Labeler, *, fallback: Labeler | None = None,
                 metrics: Metrics | None = None, http_port: int | None = None, http_host: str | None = None,
                 poll_timeout_ms: int = 200, outage_backoff_s: float = 0.5, outage_backoff_max_s: float = 15.0,
                 output_topic: str | None = None, extra_headers: Sequence[tuple[str, bytes]] = (),
                 group_id: str | None = None, window: Mapping[TopicPartition, tuple[int, int]] | None = None,
                 ) -> None:
        super().__init__(
            settings.kafka, topics=[settings.kafka.input_topic], metrics=metrics,
            http_port=settings.http_port if http_port is None else http_port,
            http_host=settings.http_host if http_host is None else http_host,
            poll_timeout_ms=poll_timeout_ms, outage_backoff_s=outage_backoff_s,
            outage_backoff_max_s=outage_backoff_max_s, group_id=group_id, window=window,
        )
        self.settings = settings
        self.labeler = labeler
        self.scope_rules = settings.scope.rules()
        # Where outputs go and what they carry beyond run's own headers: `replay` writes to its own topic and
        # adds `replay-of`; the code path is otherwise this one.
        self.output_topic = output_topic or self.kafka.output_topic
        self.extra_headers = list(extra_headers)
        ls = settings.labeler
        self.batch_labeler = BatchLabeler(
            labeler, self.metrics, max_batch=max(1, min(self.kafka.max_batch, LABEL_CHUNK)),
            max_concurrency=ls.max_concurrency, max_retries=ls.max_retries, fallback=fallback,
        )

    def on_started(self) -> None:
        log.info("connector_started", input_topic=self.kafka.input_topic, group=self.group_id,
                 labeler=self.labeler.info.name)

    async def probe_downstream(self) -> tuple[bool, str]:
        # Not only after a failed batch: an idle connector whose model endpoint is down cannot take traffic. With
        # the rule fallback it can, so the model server is not asked.
        if self.batch_labeler.fallback is not None or await self.labeler.ready():
            return True, "ready"
        return False, "labeler not ready: model endpoint unreachable"

    def probe_failed(self, exc: BaseException) -> str:
        return "labeler not ready: model endpoint unreachable"

    async def act(self, inputs: list[InputRecord]) -> None:
        outcomes = await process_batch(inputs, self.batch_labeler, self.kafka, self.settings.hl7, self.scope_rules,
                                       fhir=self.settings.fhir)
        await self._publish(outcomes)

    async def _publish(self, outcomes: Sequence[Outcome]) -> None:
        await self.deliver(outcomes)
        self._count(outcomes)

    async def deliver(self, outcomes: Sequence[Outcome]) -> None:
        """Put the batch's outputs and dead letters where they go and return once all are acknowledged (here: on
        the broker with acks=all; `replay --to-files`: written to disk)."""
        out_topic, dlq_topic = self.output_topic, self.kafka.dead_letter_topic
        futures = []
        for outcome in outcomes:
            for out in outcome.outputs:
                headers = out.headers + self.extra_headers if self.extra_headers else out.headers
                futures.append(await self.producer.send(out_topic, out.value, key=out.key, headers=headers))
            if outcome.dead_letter is not None:
                dead = outcome.dead_letter
                futures.append(await self.producer.send(dlq_topic, dead.value, key=dead.key, headers=dead.headers()))
        await asyncio.gather(*futures)  # acks=all: every record is on the broker before any offset moves

    def _count(self, outcomes: Sequence[Outcome]) -> None:
        now = time.time()
        for outcome in outcomes:
            if outcome.outputs:
                self.metrics.published.inc(len(outcome.outputs))
                for labels in outcome.labels:
                    self.metrics.labeled.labels(labels.labeler.name, str(labels.fallback).lower()).inc()
            if outcome.dead_letter is not None:
                self.metrics.dead_lettered.labels(outcome.dead_letter.reason).inc()
                log.warning("dead_lettered", reason=outcome.dead_letter.reason, topic=outcome.record.topic,
                            partition=outcome.record.partition, offset=outcome.record.offset)
            for reason in outcome.skipped:
                self.metrics.skipped.labels(reason).inc()
            for kind in outcome.identifier_fallbacks:
                self.metrics.identifier_fallback.labels(kind).inc()
            if outcome.record.timestamp_ms:
                self.metrics.end_to_end.observe(max(0.0, now - outcome.record.timestamp_ms / 1000))
