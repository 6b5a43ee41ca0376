"""`radlabel replay` vs `radlabel run` on the same window, and `radlabel audit export` rows per second.

    PYTHONPATH=. python benchmarks/replay.py [--messages 3000] [--rounds 3] [--export-rows 100000]

Replay vs run: N synthetic ORU messages on a 4-partition input topic of a local Tansu broker. Each round runs, in
this process and one after the other, `run` (StreamApp, a fresh consumer group reading the topic from the start)
and `replay` (Replay, the same window by offsets into another topic), both with the rule labeler; the order
alternates between rounds so neither always gets the warmer machine. Throughput = (N - 1) / (last output record
timestamp - first), so group joins and start-up are excluded; CPU = process CPU seconds from start to the last
commit, per message. Replay should be within 10 % of run: it is the same act on the same loop.

Audit export: a folder of Bundles from `convert_files` (rows = 14 per Bundle) -> rows in memory, then CSV and
Parquet written; side by side with a bare orjson parse of the same files (the floor any export pays).
Results: benchmarks/replay.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer

from connector.settings import KafkaSettings, Settings
from connector.stream.broker import LocalBroker, create_topics
from connector.stream.synthetic import oru_message

PARTITIONS = 4


async def _publish(bootstrap: str, topic: str, values: list[bytes]) -> None:
    from aiokafka import AIOKafkaProducer

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        futures = [await producer.send(topic, v) for v in values]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def _output_stamps(bootstrap: str, topic: str, n: int, timeout_s: float = 600) -> list[int]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, fetch_max_bytes=64 * 1_048_576)
    await consumer.start()
    stamps: list[int] = []
    try:
        deadline = time.monotonic() + timeout_s
        while len(stamps) < n and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                stamps.extend(r.timestamp for r in records)
    finally:
        await consumer.stop()
    return sorted(stamps)


async def _one(kind: str, bootstrap: str, input_topic: str, n: int) -> dict:
    from connector.rules.labeler import RuleLabeler
    from connector.stream.app import StreamApp
    from connector.stream.replay import Replay
    from connector.stream.window import WindowSpec, resolve

    suffix = uuid.uuid4().hex[:6]
    out, dlq, group = f"{kind}-out-{suffix}", f"{kind}-dlq-{suffix}", f"{kind}-g-{suffix}"
    await create_topics(bootstrap, {out: PARTITIONS, dlq: 1})
    kafka = KafkaSettings(bootstrap_servers=bootstrap, input_topic=input_topic, output_topic=out,
                          dead_letter_topic=dlq, group_id=group, max_batch=64)
    settings = Settings(kafka=kafka)
    labeler = RuleLabeler()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    if kind in ("run", "run-late"):
        if kind == "run-late":
            # The messages arrive only after the group has joined, on a topic of their own: `run` cannot start
            # from records its fetcher buffered during the join (a head start that replay, joining nothing, lacks).
            # Its CPU figure includes publishing them; compare its throughput only.
            late = f"late-in-{suffix}"
            await create_topics(bootstrap, {late: PARTITIONS})
            settings = Settings(kafka=kafka.model_copy(update={"input_topic": late}))
        app = StreamApp(settings, labeler, http_port=-1)
        task = asyncio.create_task(app.run())
        if kind == "run-late":
            while not app.consumer.assignment():
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)
            await _publish(bootstrap, late, [oru_message(i) for i in range(n)])
        # Wait on the loop's own view of its commits (reading the output meanwhile would compete for this
        # process's CPU, which replay's measurement does not have to share).
        while sum(app._committed.values()) < n:  # noqa: SLF001
            await asyncio.sleep(0.01)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        app.request_stop()
        await task
        stamps = await _output_stamps(bootstrap, out, n)
    else:
        probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        await probe.start()
        window = await resolve(probe, input_topic, WindowSpec(offsets={p: (0, None) for p in range(PARTITIONS)}))
        await probe.stop()
        app = Replay(Settings(kafka=kafka.model_copy(update={"group_id": "live"})), labeler, window,
                     group_id=group, output_topic=out)
        await app.run()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
        assert app.complete
        stamps = await _output_stamps(bootstrap, out, n)
    assert len(stamps) == n, (kind, len(stamps))
    span_s = (stamps[-1] - stamps[0]) / 1000
    return {"kind": kind, "throughput": (n - 1) / span_s, "cpu_ms_per_msg": 1000 * cpu / n, "wall_s": wall}


async def bench_replay(n: int, rounds: int, late: bool = False) -> dict:
    with LocalBroker() as broker:
        bootstrap = broker.bootstrap_servers
        topic = f"bench-in-{uuid.uuid4().hex[:6]}"
        await create_topics(bootstrap, {topic: PARTITIONS})
        await _publish(bootstrap, topic, [oru_message(i) for i in range(n)])
        # Warm-up (discarded): first-use costs (imports, regex and FHIR model caches) are paid here, not by
        # whichever variant happens to go first.
        warm = f"bench-warm-{uuid.uuid4().hex[:6]}"
        await create_topics(bootstrap, {warm: PARTITIONS})
        await _publish(bootstrap, warm, [oru_message(i) for i in range(200)])
        await _one("replay", bootstrap, warm, 200)
        results: dict[str, list[dict]] = {"run": [], "replay": [], **({"run-late": []} if late else {})}
        for r in range(rounds):
            order = ("run", "replay") if r % 2 == 0 else ("replay", "run")
            for kind in (*order, "run-late") if late else order:
                results[kind].append(await _one(kind, bootstrap, topic, n))
                print(json.dumps(results[kind][-1]), flush=True)
    summary: dict = {k: {"throughput_median": statistics.median(x["throughput"] for x in v),
                   "cpu_ms_per_msg_median": statistics.median(x["cpu_ms_per_msg"] for x in v),
                   "rounds": v} for k, v in results.items()}
    summary["replay_vs_run_throughput"] = (summary["replay"]["throughput_median"]
                                           / summary["run"]["throughput_median"])
    summary["replay_vs_run_cpu"] = summary["replay"]["cpu_ms_per_msg_median"] / summary["run"]["cpu_ms_per_msg_median"]
    # Paired: each round's replay against the run next to it (same minute of a shared machine's load).
    pairs = list(zip(results["run"], results["replay"], strict=True))
    summary["paired_throughput_ratios"] = [b["throughput"] / a["throughput"] for a, b in pairs]
    summary["paired_cpu_ratios"] = [b["cpu_ms_per_msg"] / a["cpu_ms_per_msg"] for a, b in pairs]
    summary["paired_throughput_ratio_median"] = statistics.median(summary["paired_throughput_ratios"])
    summary["paired_cpu_ratio_median"] = statistics.median(summary["paired_cpu_ratios"])
    return summary


def bench_export(rows: int) -> dict:
    import orjson

    from connector.audit.export import export_records
    from connector.audit.rows import COLUMNS, INT_COLUMNS, PatientHasher
    from connector.audit.sources import folder_records
    from connector.audit.table import write_table
    from connector.cli.convert import convert_files
    from connector.rules.labeler import RuleLabeler

    bundles = -(-rows // 14)
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.hl7"
        source.write_bytes(b"".join(b"\x0b" + oru_message(i, padding_lines=2) + b"\x1c\r" for i in range(bundles)))
        folder = Path(tmp) / "bundles"

        async def convert() -> None:
            async with RuleLabeler() as labeler:
                await convert_files([source], folder, labeler)

        asyncio.run(convert())
        files = sorted(folder.glob("*.json"))
        assert len(files) == bundles
        for path in files:  # warm the page cache for every variant alike
            path.read_bytes()
        out: dict = {"bundles": bundles}
        t0 = time.perf_counter()
        for path in files:
            orjson.loads(path.read_bytes())
        out["parse_only_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        result = export_records(folder_records(folder), PatientHasher("bench"))
        out["rows_s"] = time.perf_counter() - t0
        out["rows"] = len(result.rows)
        for suffix in ("csv", "parquet"):
            t0 = time.perf_counter()
            write_table(result.rows, COLUMNS, Path(tmp) / f"t.{suffix}", INT_COLUMNS)
            out[f"write_{suffix}_s"] = time.perf_counter() - t0
            out[f"{suffix}_bytes"] = (Path(tmp) / f"t.{suffix}").stat().st_size
    n = out["rows"]
    out["rows_per_s_in_memory"] = n / out["rows_s"]
    out["rows_per_s_csv_total"] = n / (out["rows_s"] + out["write_csv_s"])
    out["rows_per_s_parquet_total"] = n / (out["rows_s"] + out["write_parquet_s"])
    out["parse_only_rows_per_s"] = n / out["parse_only_s"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--export-rows", type=int, default=100_000)
    parser.add_argument("--skip-replay", action="store_true")
    parser.add_argument("--with-late-run", action="store_true",
                        help="also run `run` with the messages published after its group joined")
    args = parser.parse_args()
    from connector.logging import configure_logging

    configure_logging("WARNING", json=True)
    report = {"machine": f"{platform.machine()} {platform.processor() or ''} {os.cpu_count()} CPU, "
                         f"Python {platform.python_version()}", "load_avg_1m_start": os.getloadavg()[0]}
    if not args.skip_replay:
        report["replay_vs_run"] = asyncio.run(bench_replay(args.messages, args.rounds, args.with_late_run))
    report["audit_export"] = bench_export(args.export_rows)
    report["load_avg_1m_end"] = os.getloadavg()[0]
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
