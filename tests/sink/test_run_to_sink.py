"""The whole chain on real parts: HL7 v2 on the input topic -> `run` (the connector's own bundles, enrich profile,
version headers) -> output topic -> `sink` -> the Medplum engine, where an ADT feed created the Patient and a RIS
feed the DiagnosticReport first. Issue 17's case with the connector's real bundles: the preliminary asserts
Pneumothorax+ and Effusion-, the correction Effusion- only; the server ends with exactly Effusion- live, the
Pneumothorax label retired, no second Patient, every label on the hospital's Patient."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import orjson

from connector.settings import FhirSettings, KafkaSettings, Settings, SinkSettings
from connector.sink.app import SinkApp
from connector.stream.app import StreamApp
from connector.stream.broker import create_topics

from tests.hl7_fhir.conftest import N, P, TableLabeler, fixture_bytes
from tests.stream.kafka_io import publish, read_all
from tests.sink.streaming import wait_committed
from tests.sink.conftest import Topics

ABSENT, PRESENT = "2667000", "52101004"


async def test_run_then_sink_leaves_exactly_the_corrected_findings(broker, medplum):
    suffix = uuid.uuid4().hex[:8]
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, input_topic=f"in-{suffix}",
                          output_topic=f"out-{suffix}", dead_letter_topic=f"dlq-{suffix}", group_id=f"run-{suffix}",
                          session_timeout_ms=6000, max_batch=32)
    await create_topics(broker.bootstrap_servers, {kafka.input_topic: 1, kafka.output_topic: 3,
                                                   kafka.dead_letter_topic: 1, f"sdlq-{suffix}": 1})
    labeler = TableLabeler(table={
        "Right pleural effusion.": {"Pneumothorax": P, "Pleural Effusion": N},  # the preliminary's text
        "Right lower lobe atelectasis.": {"Pleural Effusion": N},  # the correction's
    })
    await publish(broker.bootstrap_servers, kafka.input_topic,
                  [fixture_bytes("corrected_1_prelim.hl7"), fixture_bytes("corrected_2_corrected.hl7")])
    run = StreamApp(Settings(kafka=kafka, fhir=FhirSettings(profile="enrich"), http_port=-1), labeler)
    task = asyncio.create_task(run.run())
    try:
        outputs = await read_all(broker.bootstrap_servers, [kafka.output_topic], until=lambda r: len(r) >= 2)
    finally:
        run.request_stop()
        await task
    assert [o.headers["report-status"] for o in outputs] == ["P", "C"]
    assert {o.headers["fhir-profile"] for o in outputs} == {"enrich"}

    # The hospital's feeds created the Patient and the DiagnosticReport, under the identifiers the bundle names.
    first = orjson.loads(outputs[0].value)
    observation = next(e["resource"] for e in first["entry"] if e["resource"]["resourceType"] == "Observation")
    mrn_system, _, mrn = observation["subject"]["reference"].split("=", 1)[1].partition("|")
    accession = observation["identifier"][1]
    patient = httpx.post(f"{medplum.url}/Patient", json={
        "resourceType": "Patient", "identifier": [{"system": mrn_system, "value": mrn}]}).json()
    report = httpx.post(f"{medplum.url}/DiagnosticReport", json={
        "resourceType": "DiagnosticReport", "status": "final", "code": {"text": "XR CHEST"},
        "identifier": [{"system": accession["system"], "value": accession["value"]}],
        "subject": {"reference": f"Patient/{patient['id']}"}}).json()

    topics = Topics(broker.bootstrap_servers, kafka.output_topic, f"sdlq-{suffix}", f"sink-{suffix}")
    sink_settings = Settings(kafka=KafkaSettings(bootstrap_servers=broker.bootstrap_servers,
                                                 output_topic=kafka.output_topic, session_timeout_ms=6000),
                             sink=SinkSettings(fhir_url=medplum.url, profile="enrich", group_id=topics.group,
                                               dead_letter_topic=topics.dead_letter, conditional_references="sink"),
                             http_port=-1)
    sink = SinkApp(sink_settings)
    task = asyncio.create_task(sink.run())
    try:
        ends: dict[int, int] = {}
        for o in outputs:
            ends[o.partition] = max(ends.get(o.partition, 0), o.offset + 1)
        await wait_committed(topics, ends)
        assert (sink.sink_metrics.sent._value.get(), sink.sink_metrics.retired._value.get()) == (2, 1)
    finally:
        sink.request_stop()
        await task

    labels = httpx.get(f"{medplum.url}/Observation", params={
        "identifier": f"{accession['system']}|{accession['value']}", "_count": "100"}).json()["entry"]
    state = {e["resource"]["code"]["text"]: (e["resource"]["status"],
                                             e["resource"]["valueCodeableConcept"]["coding"][0]["code"])
             for e in labels}
    assert state == {"Pleural Effusion": ("preliminary", ABSENT), "Pneumothorax": ("entered-in-error", PRESENT)}
    assert all(e["resource"]["subject"] == {"reference": f"Patient/{patient['id']}"} for e in labels)
    assert all(e["resource"]["derivedFrom"] == [{"reference": f"DiagnosticReport/{report['id']}"}] for e in labels)
    assert len(httpx.get(f"{medplum.url}/Patient").json()["entry"]) == 1  # the ADT feed's, no second one
