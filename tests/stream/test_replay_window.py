"""`radlabel replay` on the real broker: a live connector keeps running while a window is re-labeled with another
labeler into another topic; the live group is never touched; the output is `convert`'s; a dry run writes the same
Bundles to files that `audit export` reads; stop and continue leaves no gap. And `run`'s auto_offset_reset."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from connector.audit.export import export_records
from connector.audit.rows import PatientHasher
from connector.audit.sources import folder_events, folder_records
from connector.cli.convert import convert_files
from connector.fhir.identifiers import OutputProfile
from connector.pipeline import parse_reports
from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings
from connector.stream.app import StreamApp
from connector.stream.broker import create_topics
from connector.stream.replay import Replay
from connector.stream.window import WindowSpec, resolve
from connector.stream.synthetic import oru_message

from tests.audit.fixtures import hl7_file, spread_messages

from .connector_proc import REPO
from .kafka_io import Tail, committed, publish, read_all


def stamps(values: list[bytes]) -> list[int]:
    """Kafka timestamp = MSH-7, as an interface engine publishing as it sends makes it (then `run` and `convert`
    agree byte for byte: Provenance.recorded)."""
    return [int(parse_reports(v)[0].message_time.timestamp() * 1000) for v in values]


def ms(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=timezone.utc).timestamp() * 1000)


async def window_of(kafka: KafkaSettings, want: WindowSpec):  # noqa: ANN201
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        return await resolve(consumer, kafka.input_topic, want)
    finally:
        await consumer.stop()


async def convert_of(values: list[bytes], labeler, tmp: Path) -> dict[str, bytes]:  # noqa: ANN001
    out = tmp / f"convert-{uuid.uuid4().hex[:6]}"
    # `run` (and so replay) writes the enrich profile unless told otherwise; convert's default is standalone.
    await convert_files([hl7_file(values, tmp / "in.hl7")], out, labeler, profile=OutputProfile("enrich"))
    return {p.stem: p.read_bytes() for p in out.glob("*.json")}


async def replay_topics(kafka: KafkaSettings) -> str:
    topic = f"replay-{uuid.uuid4().hex[:8]}"
    await create_topics(kafka.bootstrap_servers, {topic: 3, f"{topic}.dlq": 1})
    return topic


async def test_replay_relabels_a_window_while_the_live_connector_runs(kafka: KafkaSettings, tmp_path: Path) -> None:
    values = spread_messages(40)  # one report a day from 2025-01-06
    await publish(kafka.bootstrap_servers, kafka.input_topic, values, timestamps_ms=stamps(values))
    live_labeler = RuleLabeler()
    live = StreamApp(Settings(kafka=kafka), live_labeler, http_port=-1)
    live_task = asyncio.create_task(live.run())
    out_topic = await replay_topics(kafka)
    try:
        for _ in range(300):
            if sum((await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3)).values()) == 40:
                break
            await asyncio.sleep(0.1)
        rebalances = live.metrics.rebalances._value.get()
        # Days 10..29: twenty reports, by time.
        window = await window_of(kafka, WindowSpec(ms("2025-01-16"), ms("2025-02-05")))
        assert window.total == 20
        candidate = RuleLabeler(profile="chexpert")
        settings = Settings(kafka=kafka.model_copy(update={"dead_letter_topic": f"{out_topic}.dlq"}))
        replay = Replay(settings, candidate, window, group_id=f"{kafka.group_id}.replay", output_topic=out_topic)
        replay_task = asyncio.create_task(replay.run())
        # Live traffic during the replay: the live connector takes it, the replay's window does not grow.
        more = spread_messages(45)[40:]
        await publish(kafka.bootstrap_servers, kafka.input_topic, more, timestamps_ms=stamps(more))
        await asyncio.wait_for(replay_task, 60)
        assert replay.complete and replay.summary()["bundles"] == 20
        out = await read_all(kafka.bootstrap_servers, [out_topic], until=lambda r: len(r) >= 20, timeout_s=10)
        live_out = await read_all(kafka.bootstrap_servers, [kafka.output_topic], until=lambda r: len(r) >= 45)
        assert len(out) == 20 and len(live_out) == 45
        assert live.metrics.rebalances._value.get() == rebalances  # the replay never joined the live group
    finally:
        live.request_stop()
        await asyncio.wait_for(live_task, 30)
    # Byte-identical to `radlabel convert` of the same twenty messages with the same (other) labeler.
    offline = await convert_of(values[10:30], RuleLabeler(profile="chexpert"), tmp_path)
    assert {r.headers["bundle-id"]: r.value for r in out} == offline
    for record in out:
        assert record.headers["replay-of"] == window.label()
        assert record.headers["replay-labeler"] == f"rules@{candidate.info.version}"
        assert record.headers["labeler-version"] == candidate.info.version != live_labeler.info.version
        assert record.headers["source-topic"] == kafka.input_topic
        assert (int(record.headers["source-partition"]), int(record.headers["source-offset"])) in {
            (tp.partition, o) for tp in window.partitions() for o in range(*window.ranges[tp.partition])}
    # The live group's offsets: all 45 inputs, committed by the live connector alone. The replay's progress is
    # in its own group, exactly the window's end.
    sent_ends = await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3)
    assert sum(sent_ends.values()) == 45
    replay_commits = await committed(kafka.bootstrap_servers, f"{kafka.group_id}.replay", kafka.input_topic, 3)
    assert replay_commits == {p: window.ranges[p][1] if window.ranges[p][1] > window.ranges[p][0] else 0
                              for p in range(3)}

    # With the live connector stopped, a dry run of the same window to files leaves the live offsets as they are.
    before = await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3)
    folder = tmp_path / "dry"
    dry = Replay(Settings(kafka=kafka), RuleLabeler(profile="chexpert"), window,
                 group_id=f"{kafka.group_id}.dry", files=folder)
    await asyncio.wait_for(dry.run(), 60)
    assert dry.complete
    assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == before
    assert {p.stem: p.read_bytes() for p in folder.glob("*.json")} == offline
    exported = export_records(folder_records(folder), PatientHasher("s"), folder_events(folder))
    assert exported.bundles == 20 and len(exported.rows) == 20 * 14
    assert {row["replay_of"] for row in exported.rows} == {window.label()}
    assert {row["model_version"] for row in exported.rows} == {candidate.info.version}
    assert all(row["source_topic"] == kafka.input_topic and row["source_offset"] is not None
               for row in exported.rows)


async def test_dry_run_records_dead_letters_and_skips_with_their_source(kafka: KafkaSettings, tmp_path: Path) -> None:
    brain = oru_message(3).replace(b"|71046^XR CHEST 2 VIEWS^CPT|||", b"|70551^MRI BRAIN WO CONTRAST^CPT|||")
    values = [oru_message(1), b"garbage, not HL7", brain, oru_message(2)]
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    window = await window_of(kafka, WindowSpec(offsets={p: (0, None) for p in range(3)}))
    folder = tmp_path / "dry"
    app = Replay(Settings(kafka=kafka), RuleLabeler(), window, group_id="g-dry", files=folder)
    await asyncio.wait_for(app.run(), 60)
    summary = app.summary()
    assert summary["complete"] and summary["bundles"] == 2
    assert summary["dead_letters"] == {"not-hl7": 1} and summary["skipped"] == {"excluded:mr": 1}
    events = folder_events(folder)
    garbage = next(s for s in sent if s.value.startswith(b"garbage"))
    assert {(e["kind"], e["reason"], e["source_partition"], e["source_offset"]) for e in events} == {
        ("dead-letter", "not-hl7", garbage.partition, garbage.offset),
        ("skipped", "excluded:mr", *next((s.partition, s.offset) for s in sent if s.value == brain))}
    dead = json.loads((folder / "dead-letter" / "1.json").read_text())
    assert dead["reason"] == "not-hl7" and dead["source"] == f"{kafka.input_topic}:{garbage.partition}:{garbage.offset}"


def _replay_cli(kafka: KafkaSettings, out_topic: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "connector.cli", "replay", "--bootstrap-servers", kafka.bootstrap_servers,
           "--input-topic", kafka.input_topic, "--output-topic", out_topic, "--offsets", "0=0-,1=0-,2=0-",
           "--max-batch", "8", "--rules-profile", "chexpert"]
    with open(log, "ab") as handle:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=handle)


async def test_stop_and_continue_resumes_without_gaps(kafka: KafkaSettings, tmp_path: Path) -> None:
    n = 1500
    values = [oru_message(i, padding_lines=2) for i in range(n)]
    sent = await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    out_topic = await replay_topics(kafka)
    tail = Tail(kafka.bootstrap_servers, [out_topic])
    log = tmp_path / "replay.log"
    try:
        first = _replay_cli(kafka, out_topic, log)
        assert await tail.wait_for(lambda r: len(r) >= 50, 60), log.read_text()[-2000:]
        first.send_signal(signal.SIGTERM)
        stdout, _ = first.communicate(timeout=30)
        assert first.returncode == 0, log.read_text()[-2000:]
        stopped = json.loads(stdout)
        assert not stopped["complete"] and 0 < stopped["records_done"] < n
        done_before = len(tail.records)
        second = _replay_cli(kafka, out_topic, log)
        stdout, _ = second.communicate(timeout=120)
        assert second.returncode == 0, log.read_text()[-2000:]
        resumed = json.loads(stdout)
        assert resumed["complete"] and resumed["records_done"] == n and resumed["group"] == stopped["group"]
        assert await tail.wait_for(lambda r: len({x.source for x in r}) >= n, 30)
    finally:
        await tail.close()
    records = tail.records
    sources = {(s.partition, s.offset) for s in sent}
    assert {r.source for r in records} == sources  # no gap
    by_source: dict[tuple[int, int], bytes] = {}
    for r in records:  # repeats only of what the stopped run produced and had not committed, byte-identical
        assert by_source.setdefault(r.source, r.value) == r.value
    repeats = len(records) - n
    assert 0 <= repeats <= 3 * 8, repeats  # at most a batch per partition
    assert done_before < n
    assert "MRN9000" not in log.read_text()  # no PHI in the replay's logs


async def test_run_auto_offset_reset_latest_skips_what_came_before(kafka: KafkaSettings) -> None:
    # One produce request per message: Tansu 0.6 answers ListOffsets "latest" (what `latest` resets to) with the
    # last batch's base offset + 1, so a multi-record batch would be partly re-read there (docs/STREAMING.md).
    for i in range(10):
        await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i)])
    app = StreamApp(Settings(kafka=kafka.model_copy(update={"auto_offset_reset": "latest"})), RuleLabeler(),
                    http_port=-1)
    task = asyncio.create_task(app.run())
    try:
        for _ in range(300):  # joined and positioned at the end (the group's first join takes ~3 s on Tansu)
            if app.consumer.assignment() and all(
                    app.consumer.highwater(tp) is not None for tp in app.consumer.assignment()):
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.5)
        await publish(kafka.bootstrap_servers, kafka.input_topic, [oru_message(i) for i in range(100, 105)])
        out = await read_all(kafka.bootstrap_servers, [kafka.output_topic], until=lambda r: len(r) >= 5, timeout_s=20)
        await asyncio.sleep(1.0)
        out = await read_all(kafka.bootstrap_servers, [kafka.output_topic], until=lambda r: False, timeout_s=2)
    finally:
        app.request_stop()
        await asyncio.wait_for(task, 30)
    assert sorted(r.key for r in out) == [f"SYNHOSP|SYN{i:08d}".encode() for i in range(100, 105)]


def test_replay_refuses_to_touch_the_live_connector_or_write_nowhere(broker) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from connector.cli import app

    base = ["replay", "--bootstrap-servers", broker.bootstrap_servers]
    cases = [
        ([], "give --output-topic TOPIC or --to-files DIR"),
        (["--output-topic", "fhir.observations"], "is the live connector's topic"),
        (["--output-topic", "candidate", "--group", "radlabel"], "is the live connector's group"),
        (["--to-files", "x", "--offsets", "0=9-1"], "ends before it starts"),
    ]
    for extra, message in cases:  # refused before logging is configured: in-process is safe
        result = CliRunner().invoke(app, [*base, *extra])
        assert result.exit_code == 2 and message in result.output, (extra, result.output)
        assert "Traceback" not in result.output
    # Refused after connecting (and configuring logging): a process of its own, so this test's logging stays.
    done = subprocess.run([sys.executable, "-m", "connector.cli", *base, "--output-topic", "no-such-topic"],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and "does not exist" in done.stderr and "Traceback" not in done.stderr


async def test_replay_falls_back_exactly_as_run_does(kafka: KafkaSettings, tmp_path: Path) -> None:
    """The model is down for the whole replay and --fallback-to-rules is on: every Bundle is the rule labeler's,
    flagged as a fallback in the header and in FHIR, as `run` does (same code path)."""
    from mappings.labels import Labeler, LabelerInfo, LabelerUnavailable

    class Down(Labeler):
        info = LabelerInfo(name="llm", version="2025.03-rc", model="candidate")

        async def label_batch(self, reports):  # noqa: ANN001, ANN202
            raise LabelerUnavailable("connection refused")

    values = [oru_message(i) for i in range(6)]
    await publish(kafka.bootstrap_servers, kafka.input_topic, values)
    window = await window_of(kafka, WindowSpec(offsets={p: (0, None) for p in range(3)}))
    settings = Settings(kafka=kafka, labeler={"max_retries": 0})
    app = Replay(settings, Down(), window, group_id="g-fallback", files=tmp_path / "out", fallback=RuleLabeler())
    await asyncio.wait_for(app.run(), 60)
    assert app.complete and app.summary()["bundles"] == 6
    index = [json.loads(line) for line in (tmp_path / "out" / "index.jsonl").read_text().splitlines()]
    assert {(e["labeler"], e["fallback"], e["replay-labeler"]) for e in index} == {
        ("rules", "true", "llm@2025.03-rc#candidate")}
    for entry in index:
        bundle = json.loads((tmp_path / "out" / entry["file"]).read_text())
        methods = {e["resource"]["method"]["text"] for e in bundle["entry"]
                   if e["resource"]["resourceType"] == "Observation"}
        assert methods and all(m.endswith("[fallback]") for m in methods)
    assert app.metrics.fallback._value.get() == 6
