"""Applies a batch of output records to the FHIR server: the sink's `act` for the shared consumer loop.

Per record: read what the server holds for the report (its Provenance, our label Observations of the accession),
decide (connector.sink.plan), send one transaction; first versions (nothing of the report on the server: most
records) of several reports share one transaction (connector.sink.merge). Per batch: the reports run concurrently (at most
`sink.max_in_flight` transactions in flight), each report's records strictly in partition order, so two versions of
one report never race inside this process. `write` returns only when every record is accepted, skipped (stale,
duplicate) or a dead letter; it raises FhirUnavailable when the server stays unreachable, and then nothing of the
batch may be committed (the loop pauses and retries it; what was already applied is recognised as a duplicate).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import parse_qsl

import orjson

from connector.logging import get_logger
from connector.settings import SinkSettings
from connector.sink import dead_letter as dl
from connector.sink.bundle_facts import MACHINE_LABEL_CATEGORY, BundleFacts, Identifier, NotABundle, read_record
from connector.sink.client import FhirClient, FhirConflict, FhirRejected, FhirUnavailable
from connector.sink.merge import Group, Parts, split
from connector.sink.metrics import SinkMetrics
from connector.sink.outcome import summary
from connector.sink.plan import ServerState, Skip, plan, resolve_conditional
from connector.stream.dlq import SourceCoords

log = get_logger(__name__)

# A report changed under us this many times in a row (412/409) means a writer loop we cannot win: pause instead.
MAX_CONFLICTS = 5


class Record(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class BatchResult:
    applied: int = 0
    stale: int = 0
    duplicates: int = 0
    dead_letters: list[dl.SinkDeadLetter] | None = None


class _Unresolved(Exception):
    pass


@dataclass(frozen=True)
class _Prepared:
    """A record read and ready to send, without its parsed Bundle: holding a poll batch's parsed Bundles until the
    server's answers came back doubled the CPU of reading them (the cyclic GC traverses every live one on each
    pass, and they crowd the caches). When the server holds nothing of the report (a first version: most records)
    `first` is the whole transaction; otherwise the record is read again and planned against what the server holds
    (a search and an If-Match transaction follow then anyway)."""

    record: Record
    headers: dict[str, str]
    provenance_id: str | None
    accession: Identifier | None
    # plan(facts, ServerState()), serialised whole, or entry by entry when it may share a transaction
    # (connector.sink.merge): then it is joined only if it goes alone.
    first: bytes | Parts

    @property
    def parts(self) -> Parts | None:
        return self.first if isinstance(self.first, Parts) else None

    def first_transaction(self) -> bytes:
        return self.first.whole() if isinstance(self.first, Parts) else self.first


class _Merger:
    """Collects first versions ready to send and sends up to `reports_per_transaction` of them as one transaction.
    No timer: what is submitted in one turn of the event loop (the reports a state read just answered, or the
    ones a finished transaction's slots let go) is merged at the end of that turn, so merging adds no wait.
    `submit` answers True when the server accepted the merged transaction, False when the caller must send its
    report alone (nothing to merge with, or the merged transaction was refused); FhirUnavailable propagates."""

    def __init__(self, client: FhirClient, metrics: SinkMetrics, per_transaction: int, max_entries: int) -> None:
        self.client, self.metrics = client, metrics
        self.per_transaction, self.max_entries = per_transaction, max_entries
        self._pending: list[tuple[Parts, asyncio.Future[bool]]] = []
        self._gate: asyncio.Semaphore | None = None  # the batch's in-flight slots: one per merged transaction
        self._scheduled = False
        self._sending: set[asyncio.Task] = set()

    async def submit(self, parts: Parts, gate: asyncio.Semaphore) -> bool:
        loop = asyncio.get_running_loop()
        self._gate = gate
        done: asyncio.Future[bool] = loop.create_future()
        self._pending.append((parts, done))
        if len(self._pending) >= self.per_transaction:
            self._flush()
        elif not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await done

    def _flush(self) -> None:
        self._scheduled = False
        pending, self._pending = [p for p in self._pending if not p[1].done()], []
        groups: list[tuple[Group, list[asyncio.Future[bool]]]] = []
        for parts, done in pending:
            if not groups or len(groups[-1][1]) >= self.per_transaction or not groups[-1][0].add(parts):
                group = Group(self.max_entries)
                if not group.add(parts):
                    done.set_result(False)
                    continue
                groups.append((group, []))
            groups[-1][1].append(done)
        for group, waiting in groups:
            if len(waiting) == 1:
                waiting[0].set_result(False)  # alone: its own transaction, as without merging
                continue
            task = asyncio.ensure_future(self._send(group, waiting, self._gate))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, group: Group, waiting: list[asyncio.Future[bool]], gate: asyncio.Semaphore) -> None:
        outcome: bool | BaseException
        try:
            async with gate:
                await self.client.transaction(group.body())
            outcome = True
            self.metrics.merged.inc()
        except (FhirRejected, FhirConflict) as exc:
            # One report's bundle (or a concurrent writer) spoils the whole atomic transaction: each is resent alone.
            self.metrics.retried.labels("merge-refused").inc()
            log.info("fhir_merge_refused", status=getattr(exc, "status", 412), reports=len(waiting))
            outcome = False
        except BaseException as exc:  # FhirUnavailable, cancellation: every waiting report fails with it
            outcome = exc
        for done in waiting:
            if done.done():
                continue
            if isinstance(outcome, BaseException):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
        if isinstance(outcome, asyncio.CancelledError):
            raise outcome


_UNREAD = object()  # no prefetched Provenance for this record: read it


class SinkWriter:
    def __init__(self, client: FhirClient, settings: SinkSettings, metrics: SinkMetrics) -> None:
        self.client = client
        self.settings = settings
        self.metrics = metrics
        self._batch_reads = True  # off once a server refuses FHIR batches
        # Merging needs the transactions as planned: not when the sink rewrites them (conditional references).
        self._merger = (_Merger(client, metrics, settings.reports_per_transaction, settings.max_transaction_entries)
                        if settings.reports_per_transaction > 1 and settings.conditional_references == "server"
                        else None)

    async def write(self, records: Sequence[Record]) -> BatchResult:
        """Pipelined, because the server must not idle while the sink prepares: the records are read in order, and
        as soon as the first `max_in_flight` reports of the batch are known their state is read (one FHIR batch) and
        their transactions start; the rest of the batch is read and planned while those are on the server, with a
        second state read for the remaining reports. Reading the whole batch first, then its state, then sending
        left the server idle while the sink parsed and waited for the state (benchmarks/sink.md)."""
        result = BatchResult(dead_letters=[])
        gate = asyncio.Semaphore(self.settings.max_in_flight)
        first_group = self.settings.max_in_flight
        latest: dict[object, asyncio.Task] = {}  # each report's latest record in this batch, as a task
        tasks: list[asyncio.Task] = []
        group: list[tuple[object, _Prepared]] = []  # read, not started yet
        group_heads: set[object] = set()
        flushed = 0

        async def head(item: _Prepared, state: asyncio.Task) -> None:
            # A report's first record in the batch uses the batch read (awaited before taking a slot, so a slot is
            # never held while waiting for it); the ones after it read their own, as they see its write.
            known = (await state).get(item.provenance_id, _UNREAD) if item.provenance_id else _UNREAD
            await self._apply(item, result, gate, known)

        async def after(previous: asyncio.Task, item: _Prepared) -> None:
            # Strictly after the report's previous record; not at all when that one failed (the batch is held
            # and retried as a whole). asyncio.wait: our own cancellation still propagates.
            await asyncio.wait([previous])
            if previous.cancelled() or previous.exception() is not None:
                return
            await self._apply(item, result, gate)

        def flush() -> None:
            state = asyncio.ensure_future(self._prefetch([i for c, i in group if c in group_heads]))
            tasks.append(state)
            for chain, item in group:
                if chain in group_heads and chain not in latest:
                    task = asyncio.ensure_future(head(item, state))
                else:
                    task = asyncio.ensure_future(after(latest[chain], item))
                latest[chain] = task
                tasks.append(task)
            group.clear()
            group_heads.clear()

        try:
            for n, record in enumerate(records):
                headers = {k: (v or b"").decode("utf-8", "replace") for k, v in record.headers or ()}  # v may be None
                try:
                    facts = read_record(record.value, headers)
                except NotABundle as exc:
                    result.dead_letters.append(self._dead(record, exc.reason, exc.detail))
                    continue
                if self.settings.profile and facts.profile != self.settings.profile:
                    result.dead_letters.append(self._dead(
                        record, dl.PROFILE_MISMATCH,
                        f"record profile {facts.profile}, sink.profile {self.settings.profile}"))
                    continue
                # One chain per report (records without a report id: per record key, else alone).
                chain = facts.report_id or record.key or (record.partition, record.offset)
                if chain not in latest and chain not in group_heads:
                    group_heads.add(chain)
                planned = plan(facts, ServerState(), retire=self.settings.retire).transaction
                parts = split(planned) if self._merger is not None else None
                first = parts if parts is not None and parts.mergeable else orjson.dumps(planned)
                group.append((chain, _Prepared(record, headers, facts.provenance_id, facts.accession, first)))
                del planned
                del facts  # see _Prepared
                if not flushed and len(group_heads) >= first_group:
                    flush()
                    flushed += 1
                    await asyncio.sleep(0)  # let the state read go out before reading on
                elif flushed and n % first_group == 0:
                    await asyncio.sleep(0)  # let answers in and the next transactions out
            if group:
                flush()
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome  # FhirUnavailable (or a bug): nothing of this batch is committed
        return result

    async def _prefetch(self, heads: list[_Prepared]) -> dict[str, dict | None]:
        """The Provenances of a group of reports' first records (the batch's first `max_in_flight` reports, then
        the rest), in one FHIR batch request instead of one read each: a single read costs the server about as
        much as 10–25 ids in a batch read (benchmarks/sink_parts.py). A group of one reads normally."""
        ids = list(dict.fromkeys(f.provenance_id for f in heads if f.provenance_id))
        if len(ids) < 2 or not self._batch_reads:
            return {}
        try:
            return await self.client.read_many("Provenance", ids)
        except FhirRejected as exc:
            self._batch_reads = False
            log.warning("fhir_batch_refused", status=exc.status)
            return {}

    async def _apply(self, item: _Prepared, result: BatchResult, gate: asyncio.Semaphore,
                     known: object = _UNREAD) -> None:
        """One record, holding one of the batch's `max_in_flight` slots while it reads and sends; a first version
        the state read found nothing of goes to the merger instead, which takes a slot per merged transaction (a
        slot held while waiting for the merger could starve it)."""
        if known is None and item.parts is not None and self._merger is not None:
            if await self._merger.submit(item.parts, gate):
                self._accepted(item.record, result, 0)
                return
        async with gate:
            await self._apply_alone(item, result, known)

    async def _apply_alone(self, item: _Prepared, result: BatchResult, known: object) -> None:
        record = item.record
        for _ in range(MAX_CONFLICTS):
            try:
                # A 4xx on our own read or search is about this record too (e.g. an accession the server cannot
                # search for): a dead letter, like a refused transaction.
                state = await self._read_state(item, known)
                known = _UNREAD  # after a conflict, read again
                transaction: dict | bytes
                if state.provenance is None and not state.observations:
                    transaction, retired = item.first_transaction(), 0  # nothing of the report on the server
                else:
                    decision = plan(read_record(record.value, item.headers), state, retire=self.settings.retire)
                    if isinstance(decision, Skip):
                        if decision.reason == "stale":
                            result.stale += 1
                            self.metrics.stale.inc()
                        else:
                            result.duplicates += 1
                            self.metrics.duplicates.inc()
                        log.info("fhir_skipped", reason=decision.reason, partition=record.partition,
                                 offset=record.offset)
                        return
                    transaction, retired = decision.transaction, decision.retired
                if self.settings.conditional_references == "sink":
                    # resolved in place: on a copy of its own, since the plan shares the record's resources
                    transaction = orjson.loads(transaction if isinstance(transaction, bytes)
                                               else orjson.dumps(transaction))
                    await self._resolve(transaction)
                await self.client.transaction(transaction)
            except FhirConflict:
                self.metrics.retried.labels("conflict").inc()
                continue
            except FhirRejected as exc:
                result.dead_letters.append(self._dead(record, f"http-{exc.status}", summary(exc.status, exc.body),
                                                      outcome=exc.body))
                return
            except _Unresolved as exc:
                result.dead_letters.append(self._dead(record, dl.UNRESOLVED_REFERENCE, str(exc)))
                return
            self._accepted(record, result, retired)
            return
        raise FhirUnavailable(f"the same report changed on the server {MAX_CONFLICTS} times in a row (HTTP 409/412)")

    def _accepted(self, record: Record, result: BatchResult, retired: int) -> None:
        result.applied += 1
        self.metrics.sent.inc()
        if retired:
            self.metrics.retired.inc(retired)
        if record.timestamp_ms:
            self.metrics.end_to_end.observe(max(0.0, time.time() - record.timestamp_ms / 1000))

    async def _read_state(self, facts: BundleFacts | _Prepared, known: object = _UNREAD) -> ServerState:
        """The report's Provenance, then, only when it exists, our label Observations of the accession. Every
        version's transaction writes the Provenance together with its Observations, so a report without one on
        the server has no labels of ours to retire: a first version (most reports) costs one read, not a search
        (searches are what servers answer slowest)."""
        provenance = None
        if facts.provenance_id:
            provenance = (await self.client.read("Provenance", facts.provenance_id) if known is _UNREAD
                          else known)  # type: ignore[assignment]
            if provenance is None:
                return ServerState()
        observations: list[dict] = []
        if facts.accession is not None:
            observations = await self.client.search("Observation", {
                "identifier": facts.accession.token(), "category": MACHINE_LABEL_CATEGORY, "_count": "1000"})
        return ServerState(provenance=provenance, observations=observations)

    async def _resolve(self, transaction: dict) -> None:
        """Conditional references resolved by the sink (sink.conditional_references = sink)."""
        from connector.sink.bundle_facts import references

        resolved: dict[str, str | None] = {}
        for ref in {r for r in references(transaction.get("entry")) if "?" in r}:
            resource_type, _, query = ref.partition("?")
            matches = await self.client.search(resource_type, dict(parse_qsl(query)))
            if len(matches) > 1:
                raise _Unresolved(f"{resource_type} conditional reference matches {len(matches)} resources")
            resolved[ref] = f"{resource_type}/{matches[0]['id']}" if matches else None
        try:
            resolve_conditional(transaction, resolved)
        except KeyError:
            raise _Unresolved("a conditional reference matches no resource and the bundle creates none") from None

    def _dead(self, record: Record, reason: str, detail: str, outcome: bytes | None = None) -> dl.SinkDeadLetter:
        # Counted by the app once the dead letter is on the broker (a held batch is retried: no double count).
        log.warning("fhir_dead_lettered", reason=reason, partition=record.partition, offset=record.offset)
        return dl.SinkDeadLetter(reason=reason, detail=detail, key=record.key, value=record.value or b"",
                                 headers_in=tuple(record.headers or ()),
                                 source=SourceCoords(record.topic, record.partition, record.offset, record.timestamp_ms),
                                 outcome=outcome)
