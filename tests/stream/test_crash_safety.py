"""Crash safety: SIGKILL the connector process several times while ~2,000 messages stream in; after a restart
every input has its output, and any duplicate is byte-identical to the first copy."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import defaultdict
from pathlib import Path

from connector.settings import KafkaSettings
from connector.stream.synthetic import oru_message

from .connector_proc import kill, start_connector
from .kafka_io import Tail, committed, end_offsets, publish
from .phi import assert_no_phi

N = 2000
KILLS = 3


async def test_sigkill_loses_nothing_duplicates_identical(kafka: KafkaSettings, tmp_path: Path) -> None:
    log_file = tmp_path / "connector.log"
    rng = random.Random(7)
    values = [oru_message(i) for i in range(N)]
    tail = Tail(kafka.bootstrap_servers, [kafka.output_topic])
    # Stream the inputs over ~15 s while the connector is killed and restarted underneath.
    producer = asyncio.create_task(publish(kafka.bootstrap_servers, kafka.input_topic, values, rate=N / 15))
    proc = start_connector(kafka, log_file)
    at_kill = []
    try:
        for _ in range(KILLS):
            # Kill only once this incarnation is visibly producing, at a random moment mid-flow.
            before = len(tail.records)
            assert await tail.wait_for(lambda r, b=before: len(r) >= b + 40, timeout_s=30), "connector stalled"
            await asyncio.sleep(rng.uniform(0.1, 0.6))
            kill(proc)
            at_kill.append(len(tail.records))
            proc = start_connector(kafka, log_file)
        sent = await producer
        inputs = {(s.partition, s.offset) for s in sent}
        assert await tail.wait_for(lambda r: inputs <= {x.source for x in r}, timeout_s=60)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0, "graceful shutdown exits 0"
    finally:
        if proc.poll() is None:
            kill(proc)
        await tail.close()

    copies: dict[tuple[int, int], list[bytes]] = defaultdict(list)
    for record in tail.records:
        copies[record.source].append((record.key or b"") + b"\0" + record.value)
    duplicates = sum(len(v) - 1 for v in copies.values())
    print(f"\ncrash test: inputs={N} outputs={len(tail.records)} distinct={len(copies)} duplicates={duplicates} "
          f"kills={KILLS} outputs_seen_at_each_kill={at_kill}")
    assert at_kill[-1] < N, "kills happened while the stream was still flowing"
    assert set(copies) == inputs, f"lost {len(inputs - set(copies))} inputs"
    assert all(len(set(v)) == 1 for v in copies.values()), "a duplicate differs from its first copy"
    # SIGTERM committed everything it had published: nothing would be replayed on the next start.
    assert await committed(kafka.bootstrap_servers, kafka.group_id, kafka.input_topic, 3) == {
        p: end_offsets(sent).get(p, 0) for p in range(3)}
    assert_no_phi(log_file.read_text())
    assert "connector_started" in log_file.read_text()
