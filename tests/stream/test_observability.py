"""Operations signals (issue 11): /readyz follows the model endpoint, the lag metric covers every assigned
partition from the group's committed offsets (also right after a restart), and every log line is JSON."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys

from connector.rules.labeler import RuleLabeler
from connector.settings import FhirSettings, IdentifierSystem, KafkaSettings, LabelerSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import oru_message

from .connector_proc import REPO
from .kafka_io import committed, publish, read_all


def _dead_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _wait(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def _lag(app: StreamApp) -> dict[int, float]:
    return {int(s.labels["partition"]): s.value for m in app.metrics.lag.collect() for s in m.samples}


async def test_readyz_is_not_ready_while_the_model_endpoint_is_unreachable(kafka: KafkaSettings) -> None:
    from inference_client.openai_compat import OpenAILabeler

    settings = Settings(kafka=kafka, labeler=LabelerSettings(kind="llm", endpoint=f"http://127.0.0.1:{_dead_port()}"))
    labeler = OpenAILabeler.from_settings(settings.labeler)
    app = StreamApp(settings, labeler, http_port=-1)
    task = asyncio.create_task(app.run())
    try:
        await _wait(lambda: app.started)
        ready, detail = await app.ready()
        assert not ready and "model endpoint" in detail  # idle, nothing failed yet: the probe itself says so
        rules = StreamApp(settings, RuleLabeler(), http_port=-1)
        rules.started = True
        assert await rules.ready() == (True, "ready")
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
        await labeler.aclose()


async def test_lag_for_every_partition_from_committed_offsets_after_restart(kafka: KafkaSettings) -> None:
    values = [oru_message(i) for i in range(12)]
    await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    first = StreamApp(Settings(kafka=kafka), RuleLabeler(), http_port=-1)
    task = asyncio.create_task(first.run())
    try:
        await _wait(lambda: first.metrics.published._value.get() >= 12)
    finally:
        first.request_stop()
        await asyncio.wait_for(task, 30)
    done = await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3)
    assert sum(done.values()) == 12

    # Restart with nothing new to read: every partition is reported (lag 0) from the committed offsets, before
    # this instance has committed anything itself.
    second = StreamApp(Settings(kafka=kafka), RuleLabeler(), http_port=-1)
    task = asyncio.create_task(second.run())
    try:
        await _wait(lambda: set(_lag(second)) == {0, 1, 2})
        assert _lag(second) == {0: 0, 1: 0, 2: 0}
        assert second.metrics.commits._value.get() == 0
    finally:
        second.request_stop()
        await asyncio.wait_for(task, 30)


async def test_identifier_fallbacks_are_counted_and_reports_without_patient_identifier_dead_lettered(
        kafka: KafkaSettings) -> None:
    """fhir.* settings reach `run`: the site maps SYNHOSP's MRNs but not its accessions (each published report counts
    one accession fallback, no patient one); a message with an empty PID-3 is a dead letter with its reason."""
    values = [oru_message(i) for i in range(4)]
    values.append(oru_message(4).replace(b"|MRN90002^^^SYNHOSP^MR|", b"||"))
    await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    fhir = FhirSettings(patient_identifier_systems=[IdentifierSystem(namespace="SYNHOSP", system="urn:oid:1.2.3")])
    app = StreamApp(Settings(kafka=kafka, fhir=fhir), RuleLabeler(), http_port=-1)
    task = asyncio.create_task(app.run())
    try:
        out = await read_all(kafka.bootstrap_servers, [kafka.output_topic, kafka.dead_letter_topic],
                             until=lambda r: len(r) >= 5)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
    dead = [r for r in out if r.topic == kafka.dead_letter_topic]
    assert [r.headers["dlq-reason"] for r in dead] == ["no-patient-identifier"]
    published = [r for r in out if r.topic == kafka.output_topic]
    assert len(published) == 4 and {r.headers["fhir-profile"] for r in published} == {"enrich"}
    assert b"Patient?identifier=urn:oid:1.2.3|MRN9000" in published[0].value
    assert app.metrics.identifier_fallback.labels("accession")._value.get() == 4
    assert app.metrics.identifier_fallback.labels("patient")._value.get() == 0
    assert app.metrics.dead_lettered.labels("no-patient-identifier")._value.get() == 1


def test_every_log_line_is_json_including_library_logs() -> None:
    """aiokafka's own records (here: connection refused) come out as JSON like ours; only the final one-line
    CLI error is plain text."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLABEL_KAFKA__CONNECT_RETRY_S": "1"}
    proc = subprocess.run([sys.executable, "-m", "connector.cli", "run", "--bootstrap-servers",
                           f"127.0.0.1:{_dead_port()}", "--http-port", "-1"],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 4
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ")
    records = [json.loads(line) for line in lines[:-1]]  # raises if any line is not JSON
    assert any(r.get("logger", "").startswith("aiokafka") for r in records)
    assert any(r.get("event") == "broker_unreachable" for r in records)
