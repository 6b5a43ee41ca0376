"""`radlabel publish`, `radlabel send` and `radlabel mllp` as a user runs them, and the whole path end to end:
send -> gateway -> connector -> output topic, byte-identical to `radlabel convert` of the same files."""

from __future__ import annotations

from datetime import datetime, timezone

import json
import signal
from collections import Counter
from pathlib import Path

from connector.settings import KafkaSettings
from connector.stream.broker import create_topics

from ..stream.connector_proc import kill, start_connector
from ..stream.kafka_io import read_all
from .gateway_proc import cli, start_gateway
from .messages import oru

SAMPLES = Path(__file__).resolve().parents[2] / "connector" / "samples"


def input_files(tmp_path: Path, n: int = 24) -> list[Path]:
    """The bundled samples (v2.3-2.7, escapes, two reports in one message, an ADT), a file of MLLP-framed
    synthetic messages and one of plain ER7 with LF line ends (as files often have)."""
    framed = tmp_path / "framed.hl7"
    framed.write_bytes(b"".join(b"\x0b" + oru(i) + b"\x1c\r" for i in range(n)))
    plain = tmp_path / "plain-lf.hl7"
    plain.write_bytes(b"\n".join(oru(i).replace(b"\r", b"\n") for i in range(n, n + 6)))
    return [*sorted(SAMPLES.glob("*.hl7")), framed, plain]


def _recorded(bundle: bytes) -> str:
    (provenance,) = [e["resource"] for e in json.loads(bundle)["entry"]
                     if e["resource"]["resourceType"] == "Provenance"]
    return provenance["recorded"]


def _with_recorded(bundle: bytes, recorded: str) -> bytes:
    """The bundle with Provenance.recorded set as `run` sets it (canonical bytes, as both paths write them)."""
    from connector.fhir.bundle import bundle_bytes

    data = json.loads(bundle)
    for entry in data["entry"]:
        if entry["resource"]["resourceType"] == "Provenance":
            entry["resource"]["recorded"] = recorded
    return bundle_bytes(data)


def lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


async def test_send_through_gateway_equals_publish(kafka: KafkaSettings, tmp_path: Path) -> None:
    files = input_files(tmp_path, n=6)
    garbage = tmp_path / "garbage.hl7"
    garbage.write_bytes(b"NOT AN HL7 MESSAGE\n")
    direct = f"{kafka.input_topic}-direct"
    await create_topics(kafka.bootstrap_servers, {direct: 3})
    published = cli("publish", *map(str, files), "--bootstrap-servers", kafka.bootstrap_servers, "--topic", direct)
    assert published.returncode == 0, published.stderr
    summary = json.loads(published.stdout)
    expected = 9 + 6 + 6  # 9 sample messages (sample 07 holds two reports in one message), 6 framed, 6 plain
    assert summary["published"] == expected and summary["topic"] == direct
    proc, info = start_gateway(kafka, tmp_path / "gateway.log")
    try:
        assert info["event"] == "mllp_listening" and info["host"] == "127.0.0.1" and info["topic"] == kafka.input_topic
        sent = cli("send", *map(str, files), str(garbage), "--host", "127.0.0.1", "--port", str(info["port"]))
        assert sent.returncode == 3, "the garbage file is not accepted"  # exit 3 (README: input rejected)
        results = lines(sent.stdout)
        assert len(results) == expected + 1
        # samples 01 and 09 ask for enhanced-mode accept ACKs (MSH-15 AL): CA
        assert Counter(r["code"] for r in results) == Counter({"AA": expected - 2, "CA": 2, "AR": 1})
        assert results[-1]["file"] == str(garbage) and results[-1]["ack"][1].startswith("MSA|AR|")
        assert all(r["ack"][0].startswith("MSH|") for r in results)
        through_gateway = await read_all(kafka.bootstrap_servers, [kafka.input_topic],
                                         until=lambda r: len(r) >= expected)
        straight = await read_all(kafka.bootstrap_servers, [direct], until=lambda r: len(r) >= expected)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0, "SIGTERM: the gateway stops cleanly"
    # Same values and keys either way: publish is the gateway's record building without the socket.
    assert Counter((r.value, r.key) for r in through_gateway) == Counter((r.value, r.key) for r in straight)
    assert len(through_gateway) == expected
    assert all("mllp-peer" in r.headers and "mllp-peer" not in s.headers for r, s in zip(through_gateway, straight))


async def test_end_to_end_send_gateway_connector_matches_convert(kafka: KafkaSettings, tmp_path: Path) -> None:
    files = input_files(tmp_path)
    # `run` writes the enrich profile by default, `convert` standalone: compare like with like
    converted = cli("convert", *map(str, files), "--out", str(tmp_path / "convert-out"), "--profile", "enrich")
    assert converted.returncode == 0, converted.stderr
    offline = {p.stem: p.read_bytes() for p in (tmp_path / "convert-out").glob("*.json")}
    assert len(offline) == json.loads(converted.stdout)["bundles"] >= 30
    gateway, info = start_gateway(kafka, tmp_path / "gateway.log")
    connector = start_connector(kafka, tmp_path / "connector.log")
    try:
        sent = cli("send", *map(str, files), "--port", str(info["port"]))
        assert sent.returncode == 0, sent.stdout + sent.stderr
        # An engine resending what it already sent (ACK lost, timeout): harmless, identical Bundles.
        resent = cli("send", str(files[-2]), "--port", str(info["port"]))
        assert resent.returncode == 0, resent.stdout + resent.stderr
        expected = len(offline) + len(lines(resent.stdout))
        out = await read_all(kafka.bootstrap_servers, [kafka.output_topic], until=lambda r: len(r) >= expected)
        dead = await read_all(kafka.bootstrap_servers, [kafka.dead_letter_topic], until=lambda r: len(r) >= 1)
    finally:
        gateway.send_signal(signal.SIGTERM)
        gateway.wait(20)
        kill(connector)
    assert len(out) == expected and len(lines(resent.stdout)) == 24
    # Provenance.recorded is the labeling time: the input record's Kafka timestamp in `run` (here: when the gateway
    # received the message), MSH-7 in `convert`. Everything else is byte-identical.
    assert {r.headers["bundle-id"] for r in out} == set(offline)
    keys: dict[str, bytes] = {}
    for record in out:
        received = datetime.fromtimestamp(int(record.headers["source-timestamp"]) / 1000, tz=timezone.utc)
        assert _recorded(record.value) == received.isoformat()
        same_time = _with_recorded(offline[record.headers["bundle-id"]], received.isoformat())
        assert record.value == same_time  # the resent copies too, byte for byte
        assert keys.setdefault(record.headers["bundle-id"], record.key) == record.key  # and with the same key
        bundle = json.loads(record.value)
        assert record.key.decode().split("|")[0] in ("DEMOHOSP", "SYNHOSP")
        assert bundle["id"] == record.headers["bundle-id"]
    # The ADT sample went through (non_oru=forward) and the connector dead-lettered it with its bytes.
    assert [r.headers["dlq-reason"] for r in dead] == ["not-oru"]
    assert dead[0].value.startswith(b"MSH|^~\\&|") and b"|ADT^A01" in dead[0].value
