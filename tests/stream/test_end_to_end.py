"""N ORU messages in -> N FHIR Bundles out through the real broker, byte-identical to the offline pipeline."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import httpx

from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.synthetic import accession, oru_message

from .connector_proc import REPO
from .kafka_io import committed, end_offsets, publish, read_all

N = 60


def radlabel_convert(values: list[bytes], tmp_path: Path) -> dict[str, bytes]:
    """Run the offline CLI (`radlabel convert`) on the same messages: bundle id -> bytes."""
    source = tmp_path / "messages.hl7"
    source.write_bytes(b"".join(b"\x0b" + v.strip(b"\x0b\x1c\r") + b"\r\x1c\r" for v in values))
    out = tmp_path / "convert-out"
    subprocess.run([sys.executable, "-m", "connector.cli", "convert", str(source), "--out", str(out)],
                   check=True, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True)
    return {p.stem: p.read_bytes() for p in out.glob("*.json")}


async def test_n_in_n_out_byte_identical_and_committed(kafka: KafkaSettings, tmp_path: Path) -> None:
    # Every third message MLLP-framed: framing is tolerated on the input topic.
    values = [oru_message(i, mllp=(i % 3 == 0)) for i in range(N - 2)]
    # Two more versions of report 0 (preliminary, corrected): same key, so they must share an output partition.
    values += [oru_message(0, status="P", control_id="CTLPRELIM0"), oru_message(0, status="C", control_id="CTLCORR0")]
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, values)
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
