"""Streaming connector throughput and latency through a real Tansu broker, side by side in one run with
(a) a plain aiokafka consume -> produce -> commit passthrough of the same records and (b) the offline
`radlabel convert` path on the same messages.

    PYTHONPATH=. python benchmarks/stream_bench.py [--messages 3000] [--latency-messages 1000] [--rates 100,40]

Throughput: N records are published to a topic whose consumers have already joined their group (a warm-up
batch proves it), and throughput is (N - 1) / (last output timestamp - first output timestamp), so process
start-up and group joins are excluded. Latency: records published at --rate msg/s, each stamped with its send
time; end to end = output record timestamp (stamped by the connector's producer when it sends the Bundle, just
before the acks=all round trip) - input timestamp. Connectors run as real `radlabel run` processes with the rule
labeler. Results: benchmarks/stream.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connector.settings import KafkaSettings
from connector.stream.broker import LocalBroker, create_topics
from connector.stream.synthetic import oru_message
from benchmarks.measure import percentile, proc_cpu_s

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 4




# -- (b) offline -----------------------------------------------------------------------------------------------
def bench_offline(values: list[bytes]) -> dict:
    from connector.cli.convert import convert_files
    from connector.rules.labeler import RuleLabeler

    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "in.hl7"
        source.write_bytes(b"".join(b"\x0b" + v + b"\x1c\r" for v in values))

        async def run() -> tuple[float, float]:
            async with RuleLabeler() as labeler:
                started, cpu = time.perf_counter(), time.thread_time()
                counts, _ = await convert_files([source], Path(tmp) / "out", labeler)
                assert counts.bundles == len(values), (counts.messages, counts.bundles, counts.skipped)
                return time.perf_counter() - started, time.thread_time() - cpu

        elapsed, cpu = asyncio.run(run())
    return {"throughput": len(values) / elapsed, "ms_per_msg": 1000 * elapsed / len(values),
            "cpu_ms_per_msg": 1000 * cpu / len(values)}


# -- Kafka helpers ---------------------------------------------------------------------------------------------
class Topics:
    def __init__(self, name: str) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.input, self.output, self.dlq, self.group = (f"{name}-in-{suffix}", f"{name}-out-{suffix}",
                                                         f"{name}-dlq-{suffix}", f"{name}-g-{suffix}")

    async def create(self, bootstrap: str) -> None:
        await create_topics(bootstrap, {self.input: PARTITIONS, self.output: PARTITIONS, self.dlq: 1})


async def publish(bootstrap: str, topic: str, values: list[bytes], rate: float | None = None) -> dict:
    """Publish; returns (partition, offset) -> send timestamp in ms."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1 if rate is None else 0)
    await producer.start()
    stamps: dict[tuple[int, int], int] = {}
    try:
        futures = []
        started = time.monotonic()
        for i, value in enumerate(values):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            ts = int(time.time() * 1000)
            futures.append((ts, await producer.send(topic, value, timestamp_ms=ts)))
        for ts, fut in futures:
            meta = await fut
            stamps[(meta.partition, meta.offset)] = ts
    finally:
        await producer.stop()
    return stamps


async def collect(bootstrap: str, topic: str, expected: set[tuple[int, int]], timeout_s: float = 300) -> dict:
    """Read the output topic until every expected source (partition, offset) appeared: source -> output ts."""
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    seen: dict[tuple[int, int], int] = {}
    try:
        deadline = time.monotonic() + timeout_s
        while not expected <= set(seen) and time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                for r in records:
                    h = dict(r.headers)
                    seen.setdefault((int(h["source-partition"]), int(h["source-offset"])), r.timestamp)
    finally:
        await consumer.stop()
    missing = expected - set(seen)
    if missing:
        raise RuntimeError(f"{len(missing)} outputs missing")
    return {k: seen[k] for k in expected}


def throughput(out_ts: dict) -> float:
    stamps = sorted(out_ts.values())
    return (len(stamps) - 1) / max(1e-3, (stamps[-1] - stamps[0]) / 1000)


def latencies(in_ts: dict, out_ts: dict) -> dict:
    lat = [out_ts[k] - in_ts[k] for k in in_ts]
    return {"p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat),
            "mean_ms": statistics.fmean(lat)}


# -- (a) passthrough -------------------------------------------------------------------------------------------
async def passthrough(bootstrap: str, topics: Topics, stop: asyncio.Event, ready: asyncio.Event,
                      fetch_wait_ms: int) -> None:
    consumer = AIOKafkaConsumer(topics.input, bootstrap_servers=bootstrap, group_id=topics.group,
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                fetch_max_wait_ms=fetch_wait_ms)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await consumer.start()
    await producer.start()
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=100, max_records=64)
            if consumer.assignment():
                ready.set()
            futures = []
            for records in batch.values():
                for r in records:
                    futures.append(await producer.send(
                        topics.output, r.value, key=r.key,
                        headers=[("source-partition", str(r.partition).encode()),
                                 ("source-offset", str(r.offset).encode())]))
            if futures:
                await asyncio.gather(*futures)
                await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
    finally:
        await consumer.stop()
        await producer.stop()


async def run_passthrough(bootstrap: str, values: list[bytes], rate: float | None,
                          fetch_wait_ms: int | None = None) -> dict:
    topics = Topics("pass")
    await topics.create(bootstrap)
    stop, ready = asyncio.Event(), asyncio.Event()
    wait = KafkaSettings().fetch_max_wait_ms if fetch_wait_ms is None else fetch_wait_ms  # the connector's default
    task = asyncio.create_task(passthrough(bootstrap, topics, stop, ready, wait))
    await asyncio.wait_for(ready.wait(), 60)
    warm = await publish(bootstrap, topics.input, values[:40])
    await collect(bootstrap, topics.output, set(warm))
    in_ts = await publish(bootstrap, topics.input, values, rate)
    out_ts = await collect(bootstrap, topics.output, set(in_ts))
    stop.set()
    await task
    return {"throughput": throughput(out_ts), **latencies(in_ts, out_ts)}


# -- connector processes ---------------------------------------------------------------------------------------
def start_connector(bootstrap: str, topics: Topics, log: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLABEL_LOG_LEVEL": "WARNING"}
    cmd = [sys.executable, "-m", "connector.cli", "run", "--bootstrap-servers", bootstrap, "--input-topic",
           topics.input, "--output-topic", topics.output, "--dead-letter-topic", topics.dlq, "--group",
           topics.group, "--http-port", "-1"]
    with open(log, "ab") as fh:
        return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=fh)


async def group_members_assigned(bootstrap: str, topics: Topics, processes: int, values: list[bytes]) -> None:
    """Warm up until every process owns partitions: publish small batches until outputs come from
    `processes` distinct connector process ids (the output headers don't carry one, so use partitions)."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            described = await admin.describe_consumer_groups([topics.group])
            groups = described[0].groups if hasattr(described[0], "groups") else []
            members = [m for g in groups for m in g[5]] if groups else []
            if len(members) >= processes and groups[0][2] == "Stable":
                break
            await asyncio.sleep(0.5)
    finally:
        await admin.close()
    warm = await publish(bootstrap, topics.input, values[:40])
    await collect(bootstrap, topics.output, set(warm))


async def run_connector(bootstrap: str, values: list[bytes], processes: int, rate: float | None,
                        log: Path, broker_pid: int) -> dict:
    topics = Topics(f"c{processes}")
    await topics.create(bootstrap)
    procs = [start_connector(bootstrap, topics, log) for _ in range(processes)]
    try:
        await group_members_assigned(bootstrap, topics, processes, values)
        cpu_before, broker_before = sum(proc_cpu_s(p.pid) for p in procs), proc_cpu_s(broker_pid)
        in_ts = await publish(bootstrap, topics.input, values, rate)
        out_ts = await collect(bootstrap, topics.output, set(in_ts))
        cpu = sum(proc_cpu_s(p.pid) for p in procs) - cpu_before
        broker_cpu = proc_cpu_s(broker_pid) - broker_before
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(30)
    return {"throughput": throughput(out_ts), "cpu_ms_per_msg": 1000 * cpu / len(values),
            "broker_cpu_ms_per_msg": 1000 * broker_cpu / len(values), **latencies(in_ts, out_ts)}


async def main_async(args: argparse.Namespace) -> dict:
    values = [oru_message(i) for i in range(args.messages)]
    paced = [oru_message(100_000 + i) for i in range(args.latency_messages)]
    results: dict = {"messages": args.messages, "bytes_per_message": statistics.fmean(len(v) for v in values)}
    results["offline"] = await asyncio.to_thread(bench_offline, values)
    log = Path(tempfile.gettempdir()) / f"stream_bench_{os.getpid()}.log"
    with LocalBroker() as broker:
        bs = broker.bootstrap_servers
        if args.fetch_sweep:
            for wait in (500, 100, 20, 5):
                results[f"passthrough_fetch_wait_{wait}"] = await run_passthrough(bs, paced[:300], 100, wait)
        results["passthrough"] = await run_passthrough(bs, values, None)
        results["connector_1"] = await run_connector(bs, values, 1, None, log, broker.pid)
        results["connector_2"] = await run_connector(bs, values, 2, None, log, broker.pid)
        for rate in args.rates:
            results[f"passthrough_at_{rate:g}"] = await run_passthrough(bs, paced, rate)
            results[f"connector_1_at_{rate:g}"] = await run_connector(bs, paced, 1, rate, log, broker.pid)
    return results


def report(results: dict, args: argparse.Namespace, load_before: float) -> str:
    off = results["offline"]
    c1, c2, pt = results["connector_1"], results["connector_2"], results["passthrough"]
    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"1-min load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after",
        f"{results['messages']} synthetic ORU^R01 messages (backlog runs), {results['bytes_per_message']:.0f} bytes "
        f"each, {PARTITIONS} input partitions, rule labeler; {args.latency_messages} messages per paced run",
        "",
        "| path | msg/s (wall) | CPU ms/msg | broker CPU ms/msg | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
        f"| (b) offline `radlabel convert` path, in-process, no Kafka | {off['throughput']:.0f} | "
        f"{off['cpu_ms_per_msg']:.2f} | | | |",
        f"| (a) aiokafka passthrough consume->produce->commit, backlog | {pt['throughput']:.0f} | | | | |",
        f"| connector, 1 process, backlog | {c1['throughput']:.0f} | {c1['cpu_ms_per_msg']:.2f} | "
        f"{c1['broker_cpu_ms_per_msg']:.2f} | | |",
        f"| connector, 2 processes in one group, backlog | {c2['throughput']:.0f} | {c2['cpu_ms_per_msg']:.2f} | "
        f"{c2['broker_cpu_ms_per_msg']:.2f} | | |",
    ]
    for rate in args.rates:
        p, c = results[f"passthrough_at_{rate:g}"], results[f"connector_1_at_{rate:g}"]
        lines.append(f"| (a) passthrough at {rate:g} msg/s | | | | {p['p50_ms']:.0f} | {p['p99_ms']:.0f} |")
        lines.append(f"| connector, 1 process, at {rate:g} msg/s | | {c['cpu_ms_per_msg']:.2f} | "
                     f"{c['broker_cpu_ms_per_msg']:.2f} | {c['p50_ms']:.0f} | {c['p99_ms']:.0f} |")
    lines += [
        "",
        f"Kafka cost over offline, per message: wall {100 * (off['throughput'] / c1['throughput'] - 1):+.0f}%, "
        f"CPU {100 * (c1['cpu_ms_per_msg'] / off['cpu_ms_per_msg'] - 1):+.0f}%; "
        f"2 processes / 1 process throughput: {c2['throughput'] / c1['throughput']:.2f}x; cores the connector "
        f"processes got (msg/s x CPU s/msg): 1 process {c1['throughput'] * c1['cpu_ms_per_msg'] / 1000:.2f}, "
        f"2 processes {c2['throughput'] * c2['cpu_ms_per_msg'] / 1000:.2f}",
    ]
    sweep = [k for k in results if k.startswith("passthrough_fetch_wait_")]
    if sweep:
        lines += ["", "| passthrough at 100 msg/s, fetch_max_wait_ms | p50 ms | p99 ms |", "|---:|---:|---:|"]
        lines += [f"| {k.rsplit('_', 1)[1]} | {results[k]['p50_ms']:.0f} | {results[k]['p99_ms']:.0f} |" for k in sweep]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--latency-messages", type=int, default=1000)
    parser.add_argument("--rates", type=lambda v: [float(x) for x in v.split(",")], default=[100.0, 40.0],
                        help="comma-separated paced rates in msg/s")
    parser.add_argument("--json", type=Path, help="also write raw results here")
    parser.add_argument("--fetch-sweep", action="store_true",
                        help="also run the passthrough at 100 msg/s with fetch_max_wait_ms 500/100/20/5")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    results = asyncio.run(main_async(args))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(report(results, args, load_before))


if __name__ == "__main__":
    main()
