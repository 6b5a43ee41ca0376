"""The one consume -> act -> commit-after-ack loop that every Kafka program of radlabel runs (`run`, `sink`,
`replay`); each supplies only its `act`.

Delivery is at least once. A poll batch is handed to ``act``, which returns only when everything the batch
produced downstream is acknowledged (records on the broker with acks=all, a FHIR server's 2xx, dead letters on
the broker); only then are the batch's offsets committed. A crash anywhere before the commit replays the batch,
so every act must be idempotent (radlabel's outputs are deterministic: same ids, same bytes).

Backpressure: when ``act`` raises one of the program's ``holds`` (its downstream is unavailable after its own
retries: the labeler, the FHIR server), the batch is held uncommitted, every assigned partition is paused, and
the batch is retried with growing backoff while the consumer keeps polling (so it stays in the group). Readiness
reports 503 meanwhile. Nothing after the held batch is consumed or committed until the downstream answers again.
No idempotent producer or transactions: the development broker (Tansu) has neither, and this guarantee does not
need them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import time
from collections.abc import Mapping, Sequence

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError

from connector.logging import get_logger
from connector.settings import KafkaSettings
from connector.stream.connect import start_with_retry
from connector.stream.http import HealthServer
from connector.stream.kafka_config import client_kwargs, producer_max_request_size
from connector.stream.metrics import Metrics
from connector.stream.process import InputRecord

log = get_logger(__name__)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, loop: ConsumeLoop) -> None:
        self.loop = loop

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        # Let the batch in flight finish (act + commit) before the partitions move on; a batch held by an outage
        # is not waited for: it is uncommitted, and the next owner replays it.
        self.loop._revoked |= set(revoked)
        async with self.loop._batch_lock:
            pass
        for tp in revoked:
            # Another member commits there now: re-read the group's offset if it comes back; no stale lag.
            self.loop._committed.pop(tp, None)
            with contextlib.suppress(KeyError):
                self.loop.metrics.lag.remove(tp.topic, str(tp.partition))
        log.info("partitions_revoked", partitions=len(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self.loop._revoked -= set(assigned)
        self.loop.metrics.rebalances.inc()
        if self.loop.paused and assigned:
            self.loop.consumer.pause(*assigned)
        log.info("partitions_assigned", partitions=sorted(f"{tp.topic}:{tp.partition}" for tp in assigned))


class ConsumeLoop:
    """Consumer group member that hands each poll batch to :meth:`act` and commits after it returns.

    Subclasses set ``holds`` (the exceptions meaning "downstream unavailable: hold and pause") and
    ``hold_reason`` (a PHI-free phrase for logs and /readyz), implement :meth:`act`, and may override
    :meth:`probe_downstream` (one readiness check of what act talks to; the loop caches and bounds it) and
    :meth:`on_started`.
    """

    holds: tuple[type[BaseException], ...] = ()
    hold_reason = "downstream unavailable"
    program = "radlabel"
    # /readyz asks the downstream (model server, FHIR server) at most this often, and waits this long for it:
    # frequent probes must not hammer it, and /readyz must always answer.
    ready_probe_ttl_s = 5.0
    ready_probe_timeout_s = 3.0

    def __init__(self, kafka: KafkaSettings, *, topics: Sequence[str], metrics: Metrics | None = None,
                 http_port: int | None = None, http_host: str = "127.0.0.1", poll_timeout_ms: int = 200,
                 outage_backoff_s: float = 0.5, outage_backoff_max_s: float = 15.0,
                 group_id: str | None = None, window: Mapping[TopicPartition, tuple[int, int]] | None = None,
                 ) -> None:
        self.kafka = kafka
        self.topics = list(topics)
        self.group_id = group_id or kafka.group_id
        # Manual assignment (`replay`): these partitions, each from its start (or from this group's committed
        # offset inside the window: resume) up to its exclusive end; the loop ends once every end is committed.
        # No group membership, so no rebalance, and no other group's offsets are read or moved.
        self.window = dict(window) if window is not None else None
        self.complete = False
        self.metrics = metrics or Metrics()
        self.poll_timeout_ms = poll_timeout_ms
        self.outage_backoff_s = outage_backoff_s
        self.outage_backoff_max_s = outage_backoff_max_s
        self.http_port = http_port
        self.http_host = http_host
        self.paused = False
        self.started = False
        self.failed: BaseException | None = None
        self.stop_event = asyncio.Event()
        self._batch_lock = asyncio.Lock()
        self._revoked: set[TopicPartition] = set()
        self._committed: dict[TopicPartition, int] = {}
        self._last_poll = time.monotonic()
        self.max_poll_interval_s = 300.0
        common = client_kwargs(kafka)
        self.consumer = AIOKafkaConsumer(
            group_id=self.group_id, group_instance_id=kafka.group_instance_id,
            enable_auto_commit=False, auto_offset_reset=kafka.auto_offset_reset,
            max_partition_fetch_bytes=max(1_048_576, kafka.max_record_bytes * 2),
            fetch_max_bytes=max(52_428_800, kafka.max_record_bytes * 4),
            session_timeout_ms=kafka.session_timeout_ms, fetch_max_wait_ms=kafka.fetch_max_wait_ms,
            max_poll_interval_ms=int(self.max_poll_interval_s * 1000),
            heartbeat_interval_ms=max(100, kafka.session_timeout_ms // 3),
            **common,
        )
        # acks=all and no idempotence/transactions (see module docstring). Every program produces something:
        # outputs, dead letters.
        self.producer = AIOKafkaProducer(acks="all", enable_idempotence=False, linger_ms=1,
                                         max_request_size=producer_max_request_size(kafka), **common)
        self.http: HealthServer | None = None
        self._probe: tuple[float, bool, str] = (float("-inf"), False, "")

    # -- what a program supplies -----------------------------------------------------------------------------
    async def act(self, inputs: list[InputRecord]) -> None:
        """Do the program's work on one batch and return once every result is acknowledged downstream.
        Raise one of ``holds`` to hold the batch (pause + retry); anything else stops the program."""
        raise NotImplementedError

    async def probe_downstream(self) -> tuple[bool, str]:
        """One readiness check of what act talks to: (ready, PHI-free detail). May raise; see downstream_ready."""
        return True, "ready"

    def probe_failed(self, exc: BaseException) -> str:
        """The /readyz detail when probe_downstream raised or timed out."""
        return f"{self.hold_reason} ({type(exc).__name__})"

    async def downstream_ready(self) -> tuple[bool, str]:
        """probe_downstream, cached for ready_probe_ttl_s and bounded by ready_probe_timeout_s; any failure of the
        probe (an exception, a timeout) is "not ready"."""
        now = time.monotonic()
        if now - self._probe[0] >= self.ready_probe_ttl_s:
            try:
                ok, detail = await asyncio.wait_for(self.probe_downstream(), self.ready_probe_timeout_s)
            except Exception as exc:  # noqa: BLE001 - a probe that fails in any way means "not ready"
                ok, detail = False, self.probe_failed(exc)
            self._probe = (time.monotonic(), ok, detail)
        return self._probe[1], self._probe[2]

    def on_started(self) -> None:
        """Called once the consumer has subscribed (log line, gauges)."""

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
            return False, f"paused: {self.hold_reason}"
        if self.stop_event.is_set():
            return False, "stopping"
        return await self.downstream_ready()

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
                if self.window is None:
                    self.consumer.subscribe(self.topics, listener=_Rebalance(self))
                else:
                    await self._assign_window()
                self.started = True
                # Startup objects (parsers, rule tables, FHIR models) are long-lived: keep them out of the
                # cyclic GC's full passes, which otherwise show up as latency spikes.
                gc.freeze()
                self.on_started()
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
            log.info(f"{self.program}_stopped")

    async def _loop(self) -> None:
        while not self.stop_event.is_set():
            if self.window is not None and await self._window_done():
                self.complete = True
                return
            batch = await self.consumer.getmany(timeout_ms=self.poll_timeout_ms, max_records=self.kafka.max_batch)
            self._last_poll = time.monotonic()
            records = [r for tp in sorted(batch, key=lambda t: (t.topic, t.partition)) for r in batch[tp]]
            if self.window is not None:
                records = [r for r in records if r.offset < self.window[TopicPartition(r.topic, r.partition)][1]]
            if records:
                self.metrics.consumed.inc(len(records))
                self.metrics.batch_size.observe(len(records))
                await self._handle(records)
            await self._update_lag()

    async def _handle(self, records: list) -> None:
        inputs = [InputRecord(r.topic, r.partition, r.offset, r.key, r.value, r.timestamp, tuple(r.headers or ()))
                  for r in records]
        attempt = 0
        while True:
            inputs = [r for r in inputs if TopicPartition(r.topic, r.partition) not in self._revoked]
            if not inputs:
                return
            async with self._batch_lock:
                try:
                    await self.act(inputs)
                except self.holds:
                    held = True
                else:
                    held = False
                    await self._commit(inputs)
            if not held:
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
            log.warning("partitions_paused", reason=self.hold_reason.replace(" ", "_"))

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

    async def _assign_window(self) -> None:
        assert self.window is not None
        self.consumer.assign(list(self.window))
        for tp, (start, end) in self.window.items():
            committed = await self.consumer.committed(tp)
            position = start if committed is None else min(max(committed, start), end)
            self._committed[tp] = position  # progress: the loop is done when every partition reaches its end
            self.consumer.seek(tp, position)
        log.info("window_assigned", partitions=len(self.window),
                 remaining=sum(end - self._committed[tp] for tp, (_, end) in self.window.items()))

    async def _window_done(self) -> bool:
        """Every partition committed up to its end, or read past it with everything before it acted and committed
        (a compacted or aborted tail has no record at end - 1 to commit)."""
        assert self.window is not None
        done = True
        for tp, (start, end) in self.window.items():
            if self._committed.get(tp, start) < end and await self.consumer.position(tp) < end:
                done = False
            elif tp not in self.consumer.paused():
                self.consumer.pause(tp)  # finished: stop fetching what a live producer appends after the end
        return done

    async def _commit(self, inputs: Sequence[InputRecord]) -> None:
        offsets: dict[TopicPartition, int] = {}
        for record in inputs:
            tp = TopicPartition(record.topic, record.partition)
            offsets[tp] = max(offsets.get(tp, 0), record.offset + 1)
        offsets = {tp: off for tp, off in offsets.items() if tp not in self._revoked}
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, KafkaError) as exc:
            # Lost the partitions mid-batch: the new owner replays from the last commit and acts again
            # (idempotent by construction).
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
