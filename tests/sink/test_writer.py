"""The writer's guard against a concurrent writer of the same report, on the real Medplum engine: another writer
lands a newer version between the sink's read and its write; the sink's If-Match makes the server answer 412, the
sink reads again, finds the newer version and skips its own older one."""

from __future__ import annotations

from dataclasses import dataclass

import httpx
import orjson
from prometheus_client import CollectorRegistry

from connector.settings import SinkSettings
from connector.sink.client import FhirClient
from connector.sink.metrics import SinkMetrics
from connector.sink.writer import SinkWriter

from tests.sink.bundles import ids, observation_id, record
from tests.sink.streaming import labels, live


@dataclass
class Rec:
    key: bytes
    value: bytes
    headers: list
    topic: str = "t"
    partition: int = 0
    offset: int = 0
    timestamp_ms: int | None = None


class RaceTransport(httpx.AsyncBaseTransport):
    """Forwards to the server; just before the first transaction, another writer applies ``intruder``."""

    def __init__(self, url: str, intruder: bytes) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.url = url
        self.intruder = intruder
        self.raced = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and not self.raced:
            self.raced = True
            async with httpx.AsyncClient() as other:
                answer = await other.post(self.url, content=self.intruder,
                                          headers={"content-type": "application/fhir+json"})
                assert answer.status_code == 200
        return await self.inner.handle_async_request(request)


async def test_concurrent_newer_version_wins_through_if_match(medplum):
    prelim = Rec(*record("RACE1", "P", {"Pneumothorax": "+", "Edema": "?"}, result_time="2025-01-01T08:00:00Z"))
    final = Rec(*record("RACE1", "F", {"Pneumothorax": "+"}, result_time="2025-01-01T09:00:00Z"))
    corrected = record("RACE1", "C", {"Pneumothorax": "-", "Edema": "-"}, result_time="2025-01-01T10:00:00Z")[1]
    settings = SinkSettings(fhir_url=medplum.url)
    metrics = SinkMetrics(CollectorRegistry())
    plain = FhirClient(settings, metrics)
    assert (await SinkWriter(plain, settings, metrics).write([prelim])).applied == 1
    await plain.aclose()

    transport = RaceTransport(medplum.url + "/", corrected)
    client = FhirClient(settings, metrics, transport=transport)
    try:
        result = await SinkWriter(client, settings, metrics).write([final])
    finally:
        await client.aclose()
    assert transport.raced
    assert metrics.retried.labels("conflict")._value.get() == 1  # the server refused our write (412)
    assert (result.applied, result.stale) == (0, 1)  # re-read: the correction is newer, the final is stale
    # nothing of the refused final stayed (the transaction is atomic): the server holds the correction
    assert live(medplum, "RACE1") == {"Pneumothorax": "2667000", "Edema": "2667000"}
    assert medplum.get(f"DiagnosticReport/{ids('RACE1')['report']}")["status"] == "corrected"


class NoBatches(httpx.AsyncBaseTransport):
    """A server without FHIR batch support: 400 for a batch Bundle, everything else forwarded."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.refused = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST" and b'"type":"batch"' in request.content:
            self.refused += 1
            return httpx.Response(400, json={"resourceType": "OperationOutcome", "issue": [
                {"severity": "error", "code": "not-supported"}]})
        return await self.inner.handle_async_request(request)


async def test_state_is_read_in_one_batch_and_read_alone_where_batches_are_refused(medplum):
    records = [Rec(*record(f"BAT{i}", "F", {"Edema": "?"}, result_time="2025-01-01T08:00:00Z"), offset=i)
               for i in range(4)]
    settings = SinkSettings(fhir_url=medplum.url)
    metrics = SinkMetrics(CollectorRegistry())
    transport = NoBatches()
    client = FhirClient(settings, metrics, transport=transport)
    writer = SinkWriter(client, settings, metrics)
    try:
        assert (await writer.write(records[:2])).applied == 2
        assert (await writer.write(records[2:])).applied == 2
    finally:
        await client.aclose()
    assert transport.refused == 1  # asked once, then reads one by one
    before = medplum.counters()["batches"]
    client = FhirClient(settings, metrics)
    try:
        result = await SinkWriter(client, settings, metrics).write(records)  # a replay of all four
    finally:
        await client.aclose()
    assert (result.applied, result.duplicates) == (0, 4)
    assert medplum.counters()["batches"] == before + 1  # four Provenances in one request


async def test_retire_by_delete(medplum):
    """sink.retire = delete: the finding a correction dropped is deleted, in the same transaction."""
    prelim = Rec(*record("DEL1", "P", {"Pneumothorax": "+", "Pleural Effusion": "-"}, result_time="2025-01-01T08:00:00Z"))
    corrected = Rec(*record("DEL1", "C", {"Pleural Effusion": "-"}, result_time="2025-01-01T09:00:00Z"), offset=1)
    settings = SinkSettings(fhir_url=medplum.url, retire="delete")
    metrics = SinkMetrics(CollectorRegistry())
    client = FhirClient(settings, metrics)
    try:
        writer = SinkWriter(client, settings, metrics)
        assert (await writer.write([prelim])).applied == 1
        assert (await writer.write([corrected])).applied == 1
    finally:
        await client.aclose()
    assert live(medplum, "DEL1") == {"Pleural Effusion": "2667000"}
    assert labels(medplum, "DEL1") == {"Pleural Effusion": ("preliminary", "2667000")}  # nothing left retired
    gone = httpx.get(f"{medplum.url}/Observation/{observation_id('DEL1', 'Pneumothorax')}")
    assert gone.status_code in (404, 410)
    assert metrics.retired._value.get() == 1


async def _write(medplum, records, **settings_kw):
    settings = SinkSettings(fhir_url=medplum.url, **settings_kw)
    metrics = SinkMetrics(CollectorRegistry())
    client = FhirClient(settings, metrics)
    try:
        return await SinkWriter(client, settings, metrics).write(records), metrics
    finally:
        await client.aclose()


async def test_first_versions_of_several_reports_share_transactions(medplum):
    findings = [{"Edema": "+"}, {"Pneumothorax": "-", "Edema": "?"}, {"Cardiomegaly": "+"}] * 3
    records = [Rec(*record(f"MRG{i}", "F", f, result_time="2025-01-01T08:00:00Z"), offset=i)
               for i, f in enumerate(findings)]
    before = medplum.counters()["transactions"]
    result, metrics = await _write(medplum, records, reports_per_transaction=4)
    assert result.applied == len(records) and not result.dead_letters
    posted = medplum.counters()["transactions"] - before
    assert posted < len(records)  # merged: fewer transactions than reports
    assert metrics.merged._value.get() >= 1 and metrics.sent._value.get() == len(records)
    for i, f in enumerate(findings):  # every report's own labels, nothing of another's
        assert set(live(medplum, f"MRG{i}")) == set(f)
    # a replay writes nothing (each report's Provenance carries its record's digest, merged or not)
    before = medplum.counters()["transactions"]
    replay, _ = await _write(medplum, records, reports_per_transaction=4)
    assert (replay.applied, replay.duplicates) == (0, len(records))
    assert medplum.counters()["transactions"] == before


async def test_one_transaction_per_report_when_merging_is_off(medplum):
    records = [Rec(*record(f"ONE{i}", "F", {"Edema": "-"}), offset=i) for i in range(5)]
    before = medplum.counters()["transactions"]
    result, metrics = await _write(medplum, records, reports_per_transaction=1)
    assert result.applied == 5
    assert medplum.counters()["transactions"] - before == 5
    assert metrics.merged._value.get() == 0


async def test_a_refused_merged_transaction_is_resent_report_by_report(medplum):
    """One bad bundle among mergeable ones: the server refuses the atomic merged transaction; each report is then
    sent alone, so the good ones land and only the bad one is a dead letter."""
    good = [Rec(*record(f"BADM{i}", "F", {"Edema": "+"}), offset=i) for i in range(3)]
    key, value, headers = record("BADM9", "F", {"Edema": "+"})
    broken = orjson.loads(value)
    broken["entry"][-1]["request"]["url"] = "Provenance/not-its-id"  # id and URL differ: the server answers 400
    records = [good[0], Rec(key, orjson.dumps(broken), headers, offset=3), *good[1:]]
    result, metrics = await _write(medplum, records, reports_per_transaction=4)
    assert result.applied == 3
    assert [d.reason for d in result.dead_letters] == ["http-400"]
    assert result.dead_letters[0].source.offset == 3
    assert metrics.retried.labels("merge-refused")._value.get() >= 1
    for i in range(3):
        assert live(medplum, f"BADM{i}") == {"Edema": "52101004"}
    assert live(medplum, "BADM9") == {}
