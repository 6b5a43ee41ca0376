"""N ORU messages in -> N FHIR Bundles out through the real broker, byte-identical to the offline pipeline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from connector.pipeline import parse_reports
from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import accession, oru_message

from .connector_proc import REPO
from .kafka_io import committed, end_offsets, publish, read_all

N = 60


def radlabel_convert(values: list[bytes], tmp_path: Path) -> dict[str, bytes]:
    """Run the offline CLI (`radlabel convert`) on the same messages: bundle id -> bytes. `run` writes the enrich
    profile unless told otherwise; convert's default is standalone, so it is told."""
    source = tmp_path / "messages.hl7"
    source.write_bytes(b"".join(b"\x0b" + v.strip(b"\x0b\x1c\r") + b"\r\x1c\r" for v in values))
    out = tmp_path / "convert-out"
    subprocess.run([sys.executable, "-m", "connector.cli", "convert", str(source), "--out", str(out),
                    "--profile", "enrich"],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    return {p.stem: p.read_bytes() for p in out.glob("*.json")}  # index.jsonl is not a bundle


async def test_n_in_n_out_byte_identical_and_committed(kafka: KafkaSettings, tmp_path: Path) -> None:
    # Every third message MLLP-framed: framing is tolerated on the input topic.
    values = [oru_message(i, mllp=(i % 3 == 0)) for i in range(N - 2)]
    # Two more versions of report 0 (preliminary, corrected): same key, so they must share an output partition.
    values += [oru_message(0, status="P", control_id="CTLPRELIM0"), oru_message(0, status="C", control_id="CTLCORR0")]
    # Provenance.recorded is the input record's Kafka timestamp in `run` and MSH-7 in `convert`: an interface
    # engine that publishes as it sends makes them the same instant, and then the two paths agree byte for byte.
    stamps = [int(parse_reports(v)[0].message_time.timestamp() * 1000) for v in values]
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, values, timestamps_ms=stamps)
    labeler = RuleLabeler()
    app = StreamApp(Settings(kafka=kafka), labeler, http_port=0, http_host="127.0.0.1")
    task = asyncio.create_task(app.run())
    try:
        out = await read_all(kafka.bootstrap_servers, [kafka.output_topic], until=lambda r: len(r) >= N)
        assert len(out) == N
        offline = radlabel_convert(values, tmp_path)
        assert len(offline) == N
        by_source = {r.source: r for r in out}
        assert len(by_source) == N, "each input record yields exactly one output here"
        for s in sent:
            record = by_source[(s.partition, s.offset)]
            i = values.index(s.value)
            i = 0 if i >= N - 2 else i
            assert record.key == f"SYNHOSP|{accession(i)}".encode()
            assert record.value == offline[record.headers["bundle-id"]], f"message {i} differs from radlabel convert"
            assert record.headers["content-type"] == "application/fhir+json"
            assert record.headers["hl7-message-control-id"] == s.value.split(b"|")[9].decode()
            assert record.headers["source-topic"] == kafka.input_topic
            assert record.headers["labeler"] == labeler.info.name
            assert record.headers["labeler-version"] == labeler.info.version
            assert record.headers["fallback"] == "false"
            # the report-version facts (docs/HL7_FHIR.md "Output record")
            report = parse_reports(s.value)[0]
            assert record.headers["report-id"] == report.diagnostic_report_id
            assert record.headers["report-status"] == report.status
            assert record.headers["message-time"] == report.message_time.isoformat()
            assert record.headers["fhir-profile"] == "enrich"
        # Keyed by accession: all three versions of report 0 share one output partition; keys spread otherwise.
        versions = [r for r in out if r.key == f"SYNHOSP|{accession(0)}".encode()]
        assert len(versions) == 3 and len({r.partition for r in versions}) == 1
        assert len({r.partition for r in out}) > 1
        # Offsets land only after acknowledgement; poll briefly for the last commit.
        for _ in range(50):
            if await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {
                    p: end_offsets(sent).get(p, 0) for p in range(3)}:
                break
            await asyncio.sleep(0.1)
        assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {
            p: end_offsets(sent).get(p, 0) for p in range(3)}

        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http.port}") as http:
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/readyz")).status_code == 200
            metrics = (await http.get("/metrics")).text
        assert f"radlabel_records_consumed_total {float(N)}" in metrics
        assert f"radlabel_bundles_published_total {float(N)}" in metrics
        assert f'radlabel_reports_labeled_total{{fallback="false",labeler="{labeler.info.name}"}} {float(N)}' in metrics
        assert f"radlabel_end_to_end_seconds_count {float(N)}" in metrics
        for p in range(3):  # everything committed: no lag
            assert f'radlabel_consumer_lag{{partition="{p}",topic="{kafka.input_topic}"}} 0.0' in metrics
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
        await labeler.aclose()
    assert app.failed is None


async def test_mixed_feed_publishes_only_chest_radiographs_that_assert_something(kafka: KafkaSettings) -> None:
    """A real feed carries every modality and texts that assert nothing. Those records are committed, publish
    nothing, and are counted by reason; the labeler is never asked about them."""
    from tests.hl7_fhir.conftest import TableLabeler

    chest = [oru_message(i) for i in range(4)]
    brain = oru_message(10).replace(b"|71046^XR CHEST 2 VIEWS^CPT|||", b"|70551^MRI BRAIN WO CONTRAST^CPT|||")
    ct = oru_message(11).replace(b"|71046^XR CHEST 2 VIEWS^CPT|||", b"|71250^CT THORAX WO CONTRAST^CPT|||")
    head = oru_message(12, status="C", control_id="CTLADDEND12").split(b"\rOBX|", 1)[0]
    addendum = head + b"\rOBX|1|TX|RPT||ADDENDUM: Findings discussed with Dr. Okafor at 09:55.||||||C\r"
    pending = oru_message(13).split(b"\rOBX|", 1)[0] + b"\rOBX|1|TX|RPT||Report pending. Please see PACS.||||||F\r"
    values = [chest[0], brain, chest[1], ct, addendum, chest[2], pending, chest[3]]
    assert b"70551^MRI BRAIN" in brain and b"71250^CT THORAX" in ct
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    labeler = TableLabeler(default={"Cardiomegaly": "positive"})
    app = StreamApp(Settings(kafka=kafka), labeler, http_port=0, http_host="127.0.0.1")
    task = asyncio.create_task(app.run())
    try:
        expected = {p: end_offsets(sent).get(p, 0) for p in range(3)}
        for _ in range(300):
            if await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == expected:
                break
            await asyncio.sleep(0.1)
        assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == expected
        out = await read_all(kafka.bootstrap_servers, [kafka.output_topic, kafka.dead_letter_topic],
                             until=lambda r: len(r) >= 4, timeout_s=10)
        assert sorted(r.key for r in out) == sorted(f"SYNHOSP|{accession(i)}".encode() for i in range(4))
        assert all(r.topic == kafka.output_topic for r in out)
        # the labeler saw the four chest reports and nothing else
        assert len(labeler.seen) == 4 and not any(b"Report pending" in t.encode() for t in labeler.seen)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{app.http.port}") as http:
            metrics = (await http.get("/metrics")).text
        for reason in ("excluded:mr", "excluded:ct", "non-diagnostic:communication", "non-diagnostic:pending"):
            assert f'radlabel_skipped_total{{reason="{reason}"}} 1.0' in metrics
        assert "radlabel_bundles_published_total 4.0" in metrics
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
    assert app.failed is None
