"""`radlabel sink` as a real OS process, SIGKILLed twice mid-stream and restarted: nothing is lost on the server
(every report ends on its newest version, exactly its findings live), everything ends up committed, SIGTERM exits
0, and the process's own log (INFO, JSON, every library included) holds no PHI."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.sink.bundles import PATIENT, record
from tests.sink.streaming import live, publish_records, until, wait_committed

REPO = Path(__file__).resolve().parents[2]


def start_sink(topics, medplum, log_file: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p),
           "RADLABEL_KAFKA__SESSION_TIMEOUT_MS": "6000", "RADLABEL_KAFKA__MAX_BATCH": "16",
           "RADLABEL_SINK__DEAD_LETTER_TOPIC": topics.dead_letter, "RADLABEL_LOG_LEVEL": "INFO"}
    cmd = [sys.executable, "-m", "connector.cli", "sink", "--bootstrap-servers", topics.bootstrap,
           "--fhir-url", medplum.url, "--topic", topics.topic, "--group", topics.group, "--http-port", "-1"]
    with open(log_file, "ab") as log:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)


async def test_sigkill_mid_stream_loses_nothing(topics, medplum, tmp_path):
    n = 60
    first = [record(f"KIL{i:03d}", "P", {"Pneumothorax": "+", "Edema": "?"}, result_time="2025-06-01T08:00:00Z")
             for i in range(n)]
    final = [record(f"KIL{i:03d}", "F", {"Edema": "-"}, result_time="2025-06-01T09:00:00Z") for i in range(n)]
    stream = [r for pair in zip(first, final) for r in pair]
    medplum.control(delayMs=15)  # a server that takes its time, so the kills land mid-stream
    log_file = tmp_path / "sink.log"
    proc = start_sink(topics, medplum, log_file)
    publisher = asyncio.create_task(publish_records(topics.bootstrap, topics.topic, stream, rate=40))
    try:
        for kill_at in (15, 50):
            await until(lambda: medplum.counters()["transactions"] >= kill_at, 90)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            proc = start_sink(topics, medplum, log_file)
        ends = await publisher
        await wait_committed(topics, ends, timeout_s=120)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    for i in range(n):
        assert live(medplum, f"KIL{i:03d}") == {"Edema": "2667000"}, i
    log = log_file.read_text()
    assert '"event": "sink_started"' in log and "partitions_assigned" in log
    for token in PATIENT:
        assert token not in log, f"{token} leaked into logs"
    assert "KIL0" not in log, "accession leaked into logs"
