"""The streaming connector: consumer group -> parse -> label (batched) -> FHIR Bundle -> output topic.

Delivery is at least once. A poll batch is processed, every output and dead-letter record is produced with
acks=all, and only when the broker has acknowledged all of them are the batch's offsets committed. A crash
anywhere before the commit replays the batch; Bundles are deterministic (same ids, same bytes), so a replay
yields identical records that downstream PUTs absorb. No idempotent producer or transactions: the development
broker (Tansu) has neither, and neither is needed for this guarantee.

Backpressure: when the labeler stays unavailable after its retries, the batch is held (uncommitted), every
assigned partition is paused, and the batch is retried with growing backoff while the consumer keeps polling
(so it stays in the group). Readiness reports 503 meanwhile. Nothing after the failed batch is consumed or
committed until the labeler answers again.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from mappings.labels import Labeler, LabelerUnavailable

from connector.logging import get_logger
from connector.settings import Settings
from connector.stream.connect import start_with_retry
from connector.stream.http import HealthServer
from connector.stream.kafka_config import client_kwargs, producer_max_request_size
from connector.stream.labeling import BatchLabeler
from connector.stream.metrics import Metrics
from connector.stream.process import InputRecord, Outcome, process_batch

log = get_logger(__name__)

# Reports per labeler call: large enough to batch well on a model server, small enough that one slow call does
# not hold a whole poll batch (max_batch records) hostage.
LABEL_CHUNK = 32
# /readyz asks the labeler (model server health) at most this often, and waits this long for it.
READY_PROBE_TTL_S = 5.0
READY_PROBE_TIMEOUT_S = 3.0


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, app: StreamApp) -> None:
        self.app = app

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let the batch in flight finish (produce + commit) before the partitions move on; a batch held by a
        # labeler outage is not waited for: it is uncommitted, and the next owner replays it.
        self.app._revoked |= set(revoked)
        async with self.app._batch_lock:
            pass
        for tp in revoked:
            # Another member commits there now: re-read the group's offset if it comes back; no stale lag.
            self.app._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.app.metrics.lag.remove(tp.topic, str(tp.partition))
        log.info("partitions_revoked", partitions=len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.app._revoked -= set(assigned)
        self.app.metrics.rebalances.inc()
        if self.app.paused and assigned:
            self.app.consumer.pause(*assigned)
        log.info("partitions_assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class StreamApp:
    def __init__(self, settings: Settings, labeler: Labeler, *, fallback: Labeler | None = None,
                 metrics: Metrics | None = None, http_port: int | None = None, http_host: str | None = None,
                 poll_timeout_ms: int = 200, outage_backoff_s: float = 0.5, outage_backoff_max_s: float = 15.0,
                 ) -> None:
        self.settings = settings
        self.kafka = settings.kafka
        self.labeler = labeler
        self.scope_rules = settings.scope.rules()
        self.metrics = metrics or Metrics()
        ls = settings.labeler
        self.batch_labeler = BatchLabeler(
            labeler, self.metrics, max_batch=max(1, min(self.kafka.max_batch, LABEL_CHUNK)),
            max_concurrency=ls.max_concurrency, max_retries=ls.max_retries, fallback=fallback,
        )
        self.poll_timeout_ms = poll_timeout_ms
        self.outage_backoff_s = outage_backoff_s
        self.outage_backoff_max_s = outage_backoff_max_s
        self.http_port = settings.http_port if http_port is None else http_port
        self.http_host = settings.http_host if http_host is None else http_host
        self.paused = False
        self.started = False
        self.failed: BaseException | None = None
        self.stop_event = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        self._revoked: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._last_poll = time.monotonic()
        self._labeler_probe: tuple[float, bool] = (float("-inf"), False)
        self.max_poll_interval_s = 300.0
        common = client_kwargs(self.kafka)
        self.consumer = AIOKafkaConsumer(
            group_id=self.kafka.group_id, group_instance_id=self.kafka.group_instance_id, enable_auto_commit=False,
            auto_offset_reset=self.kafka.auto_offset_reset,
            max_partition_fetch_bytes=max(1_048_576, self.kafka.max_record_bytes * 2),
            fetch_max_bytes=max(52_428_800, self.kafka.max_record_bytes * 4),
            session_timeout_ms=self.kafka.session_timeout_ms, fetch_max_wait_ms=self.kafka.fetch_max_wait_ms,
            max_poll_interval_ms=int(self.max_poll_interval_s * 1000),
            heartbeat_interval_ms=max(100, self.kafka.session_timeout_ms // 3),
            **common,
        )
        # acks=all and no idempotence/transactions (see module docstring).
        self.producer = AIOKafkaProducer(acks="all", enable_idempotence=False, linger_ms=1,
                                         max_request_size=producer_max_request_size(self.kafka), **common)
        self.http: HealthServer | None = None

    # -- probes ----------------------------------------------------------------------------------------------
    async def live(self) -> tuple[bool, str]:
        if self.failed is not None:
            return False, f"failed: {type(self.failed).__name__}"
        # A loop that has not polled for longer than the group tolerates is stuck (the group dropped it).
        if self.started and time.monotonic() - self._last_poll > self.max_poll_interval_s:
            return False, "stalled: no poll within max_poll_interval"
        return True, "ok"

    async def ready(self) -> tuple[bool, str]:
        if not self.started:
            return False, "starting"
        if self.paused:
            return False, "paused: labeler unavailable"
        if self.stop_event.is_set():
            return False, "stopping"
        if self.batch_labeler.fallback is None and not await self._labeler_ready():
            # Not only after a failed batch: an idle connector whose model endpoint is down cannot take traffic.
            return False, "labeler not ready: model endpoint unreachable"
        return True, "ready"

    async def _labeler_ready(self) -> bool:
        """The labeler's own readiness probe (a model server's health), cached for a few seconds so that frequent
        probes do not hammer the server, and bounded in time so /readyz always answers."""
        now = time.monotonic()
        if now - self._labeler_probe[0] < READY_PROBE_TTL_S:
            return self._labeler_probe[1]
        try:
            ok = bool(await asyncio.wait_for(self.labeler.ready(), READY_PROBE_TIMEOUT_S))
        except Exception:  # noqa: BLE001 - a probe that fails in any way is "not ready"
            ok = False
        self._labeler_probe = (time.monotonic(), ok)
        return ok

    # -- lifecycle -------------------------------------------------------------------------------------------
    def request_stop(self) -> None:
        self.stop_event.set()

    async def run(self) -> None:
        if self.http_port is not None and self.http_port >= 0:
            self.http = HealthServer(self.metrics.registry, self.live, self.ready, self.http_host, self.http_port)
            await self.http.start()
            log.info("http_listening", port=self.http.port)
        connect = dict(address=self.kafka.bootstrap_servers, retry_s=self.kafka.connect_retry_s, stop=self.stop_event)
        try:
            await start_with_retry(self.producer.start, **connect)
        except BaseException as exc:
            self.failed = exc
            for client in (self.producer, self.consumer):  # never started, but they hold sockets/tasks to close
                with contextlib.suppress(Exception):
                    await client.stop()
            if self.http is not None:
                await self.http.stop()
            raise
        try:
            await start_with_retry(self.consumer.start, **connect)
            try:
                self.consumer.subscribe([self.kafka.input_topic], listener=_Rebalance(self))
                self.started = True
                # Startup objects (parsers, rule tables, FHIR models) are long-lived: keep them out of the
                # cyclic GC's full passes, which otherwise show up as latency spikes.
                gc.freeze()
                log.info("connector_started", input_topic=self.kafka.input_topic, group=self.kafka.group_id,
                         labeler=self.labeler.info.name)
                await self._loop()
            finally:
                # stop() leaves the group, so the partitions move to the other members at once.
                await self.consumer.stop()
        except BaseException as exc:
            self.failed = exc
            raise
        finally:
            await self.producer.stop()
            if self.http is not None:
                await self.http.stop()
            log.info("connector_stopped")

    async def _loop(self) -> None:
        while not self.stop_event.is_set():
            batch = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.kafka.max_batch)
            self._last_poll = time.monotonic()
            records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
            if records:
                self.metrics.consumed.inc(len(records))
                self.metrics.batch_size.observe(len(records))
                await self._handle(records)
            await self._update_lag()

    async def _handle(self, records: list) -> None:
        inputs = [InputRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp) for r in records]
        attempt = 0
        while True:
            inputs = [r for r in inputs if TopicPartition(r.topic, r.partition) not in self._revoked]
            if not inputs:
                return
            async with self._batch_lock:
                try:
                    outcomes = await process_batch(inputs, self.batch_labeler, self.kafka, self.settings.hl7,
                                                   self.scope_rules)
                except LabelerUnavailable:
                    outcomes = None
                else:
                    await self._publish_and_commit(outcomes)
            if outcomes is not None:
                if self.paused:
                    self._resume()
                return
            self._pause()
            delay = min(self.outage_backoff_max_s, self.outage_backoff_s * 2**attempt)
            attempt += 1
            if await self._idle(delay):
                log.info("shutdown_during_outage", held_records=len(inputs))
                return

    def _pause(self) -> None:
        if not self.paused:
            self.paused = True
            self.metrics.paused.set(1)
            self.consumer.pause(*self.consumer.assignment())
            log.warning("partitions_paused", reason="labeler_unavailable")

    def _resume(self) -> None:
        self.paused = False
        self.metrics.paused.set(0)
        self.consumer.resume(*self.consumer.assignment())
        log.info("partitions_resumed")

    async def _idle(self, seconds: float) -> bool:
        """Wait while paused, polling so the group keeps us; True when a stop was requested."""
        deadline = time.monotonic() + seconds
        while not self.stop_event.is_set() and time.monotonic() < deadline:
            self.consumer.pause(*self.consumer.assignment())
            stray = await self.consumer.getmany(timeout_ms=int(min(200, 1000 * (deadline - time.monotonic())) + 1))
            self._last_poll = time.monotonic()
            for tp, recs in stray.items():
                # Fetched just before a pause took effect: rewind so they are read again after the outage.
                if recs:
                    self.consumer.seek(tp, recs[0].offset)
        return self.stop_event.is_set()

    async def _publish_and_commit(self, outcomes: Sequence[Outcome]) -> None:
        out_topic, dlq_topic = self.kafka.output_topic, self.kafka.dead_letter_topic
        futures = []
        for outcome in outcomes:
            for out in outcome.outputs:
                futures.append(await self.producer.send(out_topic, out.value, key=out.key, headers=out.headers))
            if outcome.dead_letter is not None:
                dead = outcome.dead_letter
                futures.append(await self.producer.send(dlq_topic, dead.value, key=dead.key, headers=dead.headers()))
        await asyncio.gather(*futures)  # acks=all: every record is on the broker before any offset moves
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
            if outcome.record.timestamp_ms:
                self.metrics.end_to_end.observe(max(0.0, now - outcome.record.timestamp_ms / 1000))
        offsets: dict[TopicPartition, int] = {}
        for outcome in outcomes:
            tp = TopicPartition(outcome.record.topic, outcome.record.partition)
            offsets[tp] = max(offsets.get(tp, 0), outcome.record.offset + 1)
        offsets = {tp: off for tp, off in offsets.items() if tp not in self._revoked}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Lost the partitions mid-batch: the new owner replays from the last commit and produces the same
            # records again (duplicates are identical by construction).
            log.warning("commit_failed", error=type(exc).__name__, partitions=len(offsets))
            return
        self._committed.update(offsets)
        self.metrics.commits.inc()

    async def _update_lag(self) -> None:
        """Lag of every assigned partition: high watermark minus the group's committed offset. A partition this
        instance has not committed on yet (just assigned, e.g. right after a restart) starts from the offset the
        group committed before, read from the coordinator once per assignment."""
        for tp in self.consumer.assignment():
            if tp not in self._committed:
                try:
                    committed = await self.consumer.committed(tp)
                    if committed is None:  # the group never committed here: it starts at the reset position
                        if self.kafka.auto_offset_reset != "earliest":
                            continue
                        committed = (await self.consumer.beginning_offsets([tp]))[tp]
                except Exception:  # noqa: BLE001 - a metric must not stop the loop; retried next poll
                    continue
                self._committed.setdefault(tp, committed)
            with contextlib.suppress(Exception):
                high = self.consumer.highwater(tp)
                if high is None:
                    continue
                self.metrics.lag.labels(tp.topic, str(tp.partition)).set(max(0, high - self._committed[tp]))
