"""`radlabel sink` end to end on real parts: the Tansu broker and the Medplum FHIR engine.

Covered (issue 12 "Tests", sink side, and issue 17): standalone and enrich land; an existing Patient is
referenced, never duplicated; replaying the topic changes nothing on the server; out-of-order versions end on the
newest (both arrival orders); a correction leaves exactly the corrected labels (P: Pneumothorax+, Effusion- ->
C: Effusion- leaves Effusion- live and Pneumothorax retired; first versions retire nothing); a server outage
commits nothing past it and drains after; a 4xx bundle is a dead letter while the stream flows. No PHI in logs.
"""

from __future__ import annotations

import orjson
import pytest

from tests.sink.bundles import ACC_SYSTEM, MRN_SYSTEM, PATIENT, ids, observation_id, record
from tests.sink.streaming import (
    labels, live, probe, publish_records, running, sink_settings, until, wait_committed,
)
from tests.stream.kafka_io import committed, read_all

T0 = "2025-05-01T08:00:00+00:00"
T1 = "2025-05-01T09:30:00+00:00"
PRESENT, ABSENT = "52101004", "2667000"


def _assert_no_phi(text: str, accessions) -> None:
    for token in (*PATIENT, *accessions):
        assert token not in text, f"{token} leaked into logs"


async def test_standalone_correction_and_replay(topics, medplum, log_capture):
    prelim = record("STA1", "P", {"Pneumothorax": "+", "Pleural Effusion": "-"}, result_time=T0, message_time=T0)
    corrected = record("STA1", "C", {"Pleural Effusion": "-"}, result_time=T1, message_time=T1)
    other = record("STA2", "F", {"Cardiomegaly": "+"}, result_time=T0)
    settings = sink_settings(topics, medplum)
    async with running(settings) as app:
        ends = await publish_records(topics.bootstrap, topics.topic, [prelim, other])
        await wait_committed(topics, ends)
        # first versions: only what they assert, nothing retired
        assert labels(medplum, "STA1") == {"Pneumothorax": ("preliminary", PRESENT),
                                           "Pleural Effusion": ("preliminary", ABSENT)}
        assert app.sink_metrics.retired._value.get() == 0
        ends = await publish_records(topics.bootstrap, topics.topic, [corrected])
        await wait_committed(topics, ends)
        assert live(medplum, "STA1") == {"Pleural Effusion": ABSENT}
        assert labels(medplum, "STA1")["Pneumothorax"] == ("entered-in-error", PRESENT)  # retired, content kept
        assert live(medplum, "STA2") == {"Cardiomegaly": PRESENT}
        assert app.sink_metrics.sent._value.get() == 3 and app.sink_metrics.retired._value.get() == 1
        # standalone wrote its own Patient and DiagnosticReport, one each per report
        assert len(medplum.search("Patient")) == 2
        report = medplum.get(f"DiagnosticReport/{ids('STA1')['report']}")
        assert report["status"] == "corrected"

    # replay: the whole topic again, from the beginning, under a fresh group
    before = {o["id"]: o["meta"]["versionId"] for o in medplum.search("Observation")}
    transactions = medplum.counters()["transactions"]
    replay = sink_settings(topics, medplum, group_id=topics.group + "-replay")
    async with running(replay) as app:
        await until(lambda: app.sink_metrics.duplicates._value.get() + app.sink_metrics.stale._value.get() == 3)
        assert app.sink_metrics.stale._value.get() == 1  # the preliminary, older than the correction held
        assert app.sink_metrics.sent._value.get() == 0
    assert medplum.counters()["transactions"] == transactions  # nothing written
    assert medplum.counters()["batches"] >= 1  # the state was read in batches of reads
    assert {o["id"]: o["meta"]["versionId"] for o in medplum.search("Observation")} == before
    _assert_no_phi(log_capture.getvalue(), ["STA1", "STA2"])


@pytest.mark.parametrize("order", ["prelim-first", "final-first"])
async def test_out_of_order_versions_end_on_the_newest(topics, medplum, order):
    prelim = record("OOO1", "P", {"Pneumothorax": "+", "Edema": "?"}, result_time=T0)
    final = record("OOO1", "F", {"Pneumothorax": "-"}, result_time=T1)
    sequence = [prelim, final] if order == "prelim-first" else [final, prelim]
    async with running(sink_settings(topics, medplum)) as app:
        await wait_committed(topics, await publish_records(topics.bootstrap, topics.topic, sequence))
        assert live(medplum, "OOO1") == {"Pneumothorax": ABSENT}
        assert app.sink_metrics.stale._value.get() == (1 if order == "final-first" else 0)
        if order == "final-first":  # the stale preliminary wrote nothing: its Edema never existed
            assert "Edema" not in labels(medplum, "OOO1")
        else:
            assert labels(medplum, "OOO1")["Edema"][0] == "entered-in-error"
        assert medplum.get(f"DiagnosticReport/{ids('OOO1')['report']}")["status"] == "final"


async def test_enrich_references_the_existing_patient(topics, medplum):
    # The ADT feed created the Patient, the RIS feed the DiagnosticReport, under the site's identifiers.
    import httpx

    patient = httpx.post(f"{medplum.url}/Patient", json={
        "resourceType": "Patient", "identifier": [{"system": MRN_SYSTEM, "value": PATIENT[2]}],
        "name": [{"family": PATIENT[0]}]}).json()
    dr = httpx.post(f"{medplum.url}/DiagnosticReport", json={
        "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "XR CHEST"},
        "identifier": [{"system": ACC_SYSTEM, "value": "ENR1"}], "subject": {"reference": f"Patient/{patient['id']}"}}).json()
    first = record("ENR1", "F", {"Pneumothorax": "+", "Edema": "-"}, result_time=T0, profile="enrich")
    corrected = record("ENR1", "C", {"Edema": "-"}, result_time=T1, profile="enrich")
    standalone = record("ENR2", "F", {"Edema": "-"}, result_time=T0)  # refused by an enrich sink
    async with running(sink_settings(topics, medplum, profile="enrich")) as app:
        ends = await publish_records(topics.bootstrap, topics.topic, [first, corrected, standalone])
        await wait_committed(topics, ends)
        assert app.sink_metrics.rejected.labels("profile-mismatch")._value.get() == 1
    assert [p["id"] for p in medplum.search("Patient")] == [patient["id"]]  # no second Patient
    assert len(medplum.search("DiagnosticReport")) == 1  # the RIS one, untouched
    assert live(medplum, "ENR1") == {"Edema": ABSENT}
    edema = medplum.get(f"Observation/{observation_id('ENR1', 'Edema')}")
    assert edema["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert edema["derivedFrom"] == [{"reference": f"DiagnosticReport/{dr['id']}"}]
    assert medplum.get(f"Provenance/{ids('ENR1')['provenance']}")["target"][0] == {
        "reference": f"DiagnosticReport/{dr['id']}"}
    # a report whose patient the server does not know is a dead letter, never a new Patient
    unknown = record("ENR3", "F", {"Edema": "-"}, result_time=T0, profile="enrich", mrn="MRN-NOT-THERE")
    async with running(sink_settings(topics, medplum, profile="enrich")) as app:
        await wait_committed(topics, await publish_records(topics.bootstrap, topics.topic, [unknown]))
        assert app.sink_metrics.rejected.labels("unresolved-reference")._value.get() == 1
    assert len(medplum.search("Patient")) == 1


async def test_outage_commits_nothing_past_it_and_drains_after(topics, medplum):
    records = [record(f"OUT{i}", "F", {"Edema": "?"}, result_time=T0) for i in range(12)]
    medplum.control(fail={"count": 10_000, "status": 503, "method": "POST"})
    settings = sink_settings(topics, medplum).model_copy(update={"http_port": 0, "http_host": "127.0.0.1"})
    async with running(settings) as app:
        ends = await publish_records(topics.bootstrap, topics.topic, records)
        await until(lambda: app.paused, 30)
        assert await probe(app, "/readyz") == 503 and await probe(app, "/healthz") == 200
        retries = app.sink_metrics.retried.labels("503")._value.get()
        await until(lambda: app.sink_metrics.retried.labels("503")._value.get() > retries + 2)  # still trying
        assert await committed(topics.bootstrap, topics.group, topics.topic, 3) == {0: 0, 1: 0, 2: 0}
        assert app.sink_metrics.sent._value.get() == 0
        medplum.control(fail={"count": 0})
        await wait_committed(topics, ends)
        await until(lambda: not app.paused)
        assert await probe(app, "/readyz") == 200
        metrics = (await _get(app, "/metrics"))
        assert "radlabel_sink_transactions_total 12.0" in metrics and "radlabel_paused 0.0" in metrics
    assert all(live(medplum, f"OUT{i}") == {"Edema": "82334004"} for i in range(12))


async def _get(app, path: str) -> str:
    import httpx

    async with httpx.AsyncClient() as client:
        return (await client.get(f"http://127.0.0.1:{app.http.port}{path}")).text


async def test_rejected_bundle_is_a_dead_letter_and_the_stream_flows(topics, medplum, log_capture):
    good = [record(f"DLQ{i}", "F", {"Edema": "-"}, result_time=T0) for i in range(6)]
    key, value, headers = record("DLQBAD", "F", {"Edema": "-"}, result_time=T0)
    bad_bundle = orjson.loads(value)
    # The server refuses the transaction (id and URL differ) at its last entry: nothing of it is kept (atomic).
    bad_bundle["entry"][-1]["request"]["url"] = "Provenance/not-its-id"
    bad_value = orjson.dumps(bad_bundle)
    not_json = (b"k", b"MSH|^~\\&|not a bundle", [("report-status", b"F")])
    stream = [*good[:3], (key, bad_value, headers), not_json, *good[3:]]
    async with running(sink_settings(topics, medplum)) as app:
        ends = await publish_records(topics.bootstrap, topics.topic, stream)
        await wait_committed(topics, ends)
        assert app.sink_metrics.sent._value.get() == 6
    dead = await read_all(topics.bootstrap, [topics.dead_letter], until=lambda r: len(r) >= 2)
    by_reason = {d.headers["dlq-reason"]: d for d in dead}
    assert set(by_reason) == {"http-400", "invalid-bundle"}
    rejected = by_reason["http-400"]
    assert rejected.value == bad_value and rejected.key == key  # replayable unchanged
    assert rejected.headers["report-status"] == "F"  # the record's own headers are kept
    assert rejected.headers["dlq-detail"].startswith("HTTP 400; error/")
    assert orjson.loads(rejected.headers["fhir-operation-outcome"])["resourceType"] == "OperationOutcome"
    assert rejected.headers["source-topic"] == topics.topic
    assert all(live(medplum, f"DLQ{i}") == {"Edema": ABSENT} for i in range(6))
    assert labels(medplum, "DLQBAD") == {}
    _assert_no_phi(log_capture.getvalue(), ["DLQBAD", *(f"DLQ{i}" for i in range(6))])
