"""`radlabel sink` throughput and latency into the Medplum FHIR engine (tests/fhir_server), side by side in one run
with plain httpx loops over the same bundles.

    PYTHONPATH=. python benchmarks/sink.py [--messages 400] [--rounds 3] [--rate 50 --seconds 20]

Bundles: synthetic ORU^R01 chest X-rays (connector.stream.synthetic) through the real pipeline with the rule
labeler, one report version each, distinct accessions; records carry the headers `radlabel run` writes. Every
variant starts on a fresh Medplum process; variants run round-robin over --rounds so machine load hits each alike;
the table reports the median round.

- plain POST: an httpx.AsyncClient POSTs every bundle as a transaction, `--in-flight` at a time. The server's own
  limit for these bundles, and the target's baseline ("the sink adds <= 10 %").
- plain read+POST: the same loop reading each report's Provenance before its POST: what the version check would
  cost as one read per record (the sink reads a poll batch's Provenances in one FHIR batch request instead).
- sink: a SinkApp (the shared consume loop + connector.sink) in this process, started once the records are on
  Tansu (3 partitions); reports/s from its first consumed record to the last acceptance (the group join is
  not measured). Same --in-flight; poll batches of `kafka.max_batch` records (the setting's default, or --max-batch);
  first versions merged `sink.reports_per_transaction` to a transaction (the default; each run prints how many
  POSTs it took).
- sink, N report(s)/transaction (--also-reports-per-transaction N): the same sink merging at most N; N = 1 is a
  transaction per report, what the plain loops send.
- sink, max_batch N (--also-max-batch N): the same sink with N-record poll batches, in the same rounds.
- latency at R msg/s: records published at R/s with their create time; latency = the server's
  Provenance.meta.lastUpdated minus the record's timestamp (same host clock). Side by side: plain POSTs paced at
  R/s, each timed from send to answer (what the server alone costs at that rate).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

import httpx
import orjson
from aiokafka import AIOKafkaProducer

from connector.pipeline import Converted, convert_message, parse_reports
from connector.rules.labeler import RuleLabeler
from connector.settings import KafkaSettings, Settings, SinkSettings
from connector.sink.app import SinkApp
from connector.stream.broker import LocalBroker, create_topics
from connector.stream.synthetic import oru_message
from benchmarks.measure import percentile, proc_cpu_s

REPO = Path(__file__).resolve().parents[1]
SERVER_DIR = REPO / "tests" / "fhir_server"
PARTITIONS = 3




class Cpu:
    """CPU seconds of this process (the client: plain loop, or sink + Kafka consumer) and of the FHIR server."""

    def __init__(self, server_pid: int) -> None:
        self.pid = server_pid
        self.client, self.server = time.process_time(), proc_cpu_s(server_pid)

    def per_transaction_ms(self, n: int) -> tuple[float, float]:
        return ((time.process_time() - self.client) * 1000 / n, (proc_cpu_s(self.pid) - self.server) * 1000 / n)


def build_records(n: int, offset: int = 0) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    labeler = RuleLabeler()
    out = []
    for i in range(offset, offset + n):
        raw = oru_message(i)
        report = parse_reports(raw)[0]
        (item,) = asyncio.run(convert_message(raw, labeler))
        assert isinstance(item, Converted)
        try:  # the connector's own output headers (issue 12/17 bundles)
            from connector.pipeline import version_headers

            headers = version_headers(item)
        except ImportError:  # before them: the same facts, built here
            iso = lambda t: t.isoformat() if t else ""  # noqa: E731
            headers = [("report-id", report.diagnostic_report_id.encode()), ("report-status", report.status.encode()),
                       ("report-time", iso(report.report_time).encode()),
                       ("message-time", iso(report.message_time).encode()), ("fhir-profile", b"standalone")]
        out.append((item.key.encode(), item.bundle, headers))
    return out


class Medplum:
    def __enter__(self) -> Medplum:
        self.proc = subprocess.Popen([shutil.which("node") or "node", "server.mjs", "0"], cwd=SERVER_DIR,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.proc.stdout.readline()  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{int(line.split()[1])}"
        return self

    def __exit__(self, *exc) -> None:
        self.proc.terminate()
        self.proc.wait(10)


async def plain(url: str, records, in_flight: int, *, like_sink: bool, server_pid: int) -> tuple[float, float, float]:
    gate = asyncio.Semaphore(in_flight)
    async with httpx.AsyncClient(base_url=url + "/", timeout=60,
                                 limits=httpx.Limits(max_connections=in_flight * 2)) as client:
        async def one(value: bytes) -> None:
            async with gate:
                if like_sink:
                    bundle = orjson.loads(value)
                    prov = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance")
                    assert (await client.get(f"Provenance/{prov['id']}")).status_code == 404
                response = await client.post("", content=value, headers={"content-type": "application/fhir+json",
                                                                         "prefer": "return=minimal"})
                assert response.status_code == 200, response.text[:300]

        cpu = Cpu(server_pid)
        started = time.perf_counter()
        await asyncio.gather(*(one(v) for _, v, _ in records))
        rate = len(records) / (time.perf_counter() - started)
        return (rate, *cpu.per_transaction_ms(len(records)))


async def publish(bootstrap: str, topic: str, records, rate: float | None = None) -> list[int]:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=1)
    await producer.start()
    stamps = []
    try:
        futures = []
        started = time.monotonic()
        for i, (key, value, headers) in enumerate(records):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
            stamp = int(time.time() * 1000)
            stamps.append(stamp)
            futures.append(await producer.send(topic, value, key=key, headers=headers, timestamp_ms=stamp))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return stamps


def load_writer(path: str):
    """A SinkWriter class from a file, e.g. an earlier commit's: `git show main:connector/sink/writer.py > F`."""
    spec = importlib.util.spec_from_file_location("baseline_writer", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = module  # type: ignore[union-attr]  # dataclasses look their module up there
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.SinkWriter


def _sink(bootstrap: str, url: str, in_flight: int, topic: str, suffix: str,
          writer=None, max_batch: int | None = None, per_transaction: int | None = None) -> tuple[SinkApp, asyncio.Task]:
    settings = Settings(kafka=KafkaSettings(bootstrap_servers=bootstrap, output_topic=topic,
                                            max_batch=max_batch or KafkaSettings().max_batch),
                        sink=SinkSettings(fhir_url=url, group_id=f"bench-{suffix}", max_in_flight=in_flight,
                                          dead_letter_topic=f"bench-dlq-{suffix}",
                                          reports_per_transaction=(per_transaction
                                                                   or SinkSettings().reports_per_transaction)),
                        http_port=-1, log_level="WARNING")
    app = SinkApp(settings)
    if writer is not None:
        app.writer = writer(app.client, settings.sink, app.sink_metrics)
    return app, asyncio.create_task(app.run())


async def start_sink(bootstrap: str, url: str, in_flight: int) -> tuple[SinkApp, asyncio.Task, str]:
    suffix = uuid.uuid4().hex[:8]
    topic = f"bench-fhir-{suffix}"
    await create_topics(bootstrap, {topic: PARTITIONS, f"bench-dlq-{suffix}": 1})
    app, task = _sink(bootstrap, url, in_flight, topic, suffix)
    while len(app.consumer.assignment()) < PARTITIONS:  # joined: the group's first rebalance is not measured
        await asyncio.sleep(0.05)
    return app, task, topic


async def sink_rate(bootstrap: str, url: str, records, in_flight: int, server_pid: int, writer=None,
                    max_batch: int | None = None, per_transaction: int | None = None) -> tuple[float, float, float]:
    """The records are on the broker before the sink starts (the plain loops have theirs in memory too); timed
    from the sink's first consumed record to the last acceptance, so neither publishing nor the group's join is
    measured."""
    suffix = uuid.uuid4().hex[:8]
    topic = f"bench-fhir-{suffix}"
    await create_topics(bootstrap, {topic: PARTITIONS, f"bench-dlq-{suffix}": 1})
    await publish(bootstrap, topic, records)
    app, task = _sink(bootstrap, url, in_flight, topic, suffix, writer, max_batch, per_transaction)
    try:
        while app.metrics.consumed._value.get() == 0:
            await asyncio.sleep(0.001)
        cpu = Cpu(server_pid)
        started = time.perf_counter()
        # Woken by the last acceptance itself: a timer polling the counter every few ms cost this process CPU
        # that the plain loops do not pay (it was charged to the sink).
        done = asyncio.Event()
        inc = app.sink_metrics.sent.inc

        def counted(amount: float = 1) -> None:
            inc(amount)
            if app.sink_metrics.sent._value.get() >= len(records):
                done.set()

        app.sink_metrics.sent.inc = counted  # type: ignore[method-assign]
        if app.sink_metrics.sent._value.get() < len(records):
            waiter = asyncio.ensure_future(done.wait())
            await asyncio.wait([waiter, task], return_when=asyncio.FIRST_COMPLETED)
            if not done.is_set():
                waiter.cancel()
                raise RuntimeError(f"sink stopped: {task.exception()!r}")
        rate = len(records) / (time.perf_counter() - started)
        posts = next(s.value for m in app.sink_metrics.request_seconds.collect() for s in m.samples
                     if s.name.endswith("_count"))
        print(f"  ({len(records)} reports in {posts:.0f} transaction POSTs)")
        return (rate, *cpu.per_transaction_ms(len(records)))
    finally:
        app.request_stop()
        await task


async def sink_latency(bootstrap: str, url: str, records, rate: float, in_flight: int) -> list[float]:
    app, task, topic = await start_sink(bootstrap, url, in_flight)
    try:
        stamps = await publish(bootstrap, topic, records, rate=rate)
        while app.sink_metrics.sent._value.get() < len(records):
            await asyncio.sleep(0.05)
    finally:
        app.request_stop()
        await task
    out = []
    async with httpx.AsyncClient(base_url=url + "/") as client:
        for (_, value, _), stamp in zip(records, stamps):
            prov_id = next(e["resource"]["id"] for e in orjson.loads(value)["entry"]
                           if e["resource"]["resourceType"] == "Provenance")
            updated = (await client.get(f"Provenance/{prov_id}")).json()["meta"]["lastUpdated"]
            out.append(datetime.fromisoformat(updated.replace("Z", "+00:00")).timestamp() * 1000 - stamp)
    return out


async def plain_latency(url: str, records, rate: float) -> list[float]:
    out: list[float] = []
    async with httpx.AsyncClient(base_url=url + "/", timeout=60) as client:
        async def one(value: bytes) -> None:
            t = time.perf_counter()
            response = await client.post("", content=value, headers={"content-type": "application/fhir+json"})
            assert response.status_code == 200
            out.append((time.perf_counter() - t) * 1000)

        tasks = []
        started = time.monotonic()
        for i, (_, value, _) in enumerate(records):
            delay = started + i / rate - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(value)))
        await asyncio.gather(*tasks)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--baseline-writer", metavar="FILE",
                        help="also run the sink with the SinkWriter of FILE (an earlier writer.py), same rounds")
    parser.add_argument("--max-batch", type=int, default=KafkaSettings().max_batch,
                        help="the sink's poll batch (kafka.max_batch)")
    parser.add_argument("--also-max-batch", type=int, action="append", default=[], metavar="N",
                        help="also run the sink with N-record poll batches, same rounds (repeatable)")
    parser.add_argument("--also-reports-per-transaction", type=int, action="append", default=[], metavar="N",
                        help="also run the sink with sink.reports_per_transaction N, same rounds (repeatable; "
                             "1 = a transaction per report)")
    args = parser.parse_args()
    if min([args.max_batch, *args.also_max_batch, *args.also_reports_per_transaction]) < 1:
        parser.error("--max-batch, --also-max-batch and --also-reports-per-transaction take a count >= 1")
    baseline = load_writer(args.baseline_writer) if args.baseline_writer else None
    records = build_records(args.messages)
    latency_records = build_records(int(args.rate * args.seconds), offset=args.messages)
    print(f"machine: {platform.machine()} {os.cpu_count()} CPUs, load {os.getloadavg()}, sink max_batch {args.max_batch}, "
          f"bundle {statistics.median(len(v) for _, v, _ in records)} bytes median")
    results: dict[str, list[tuple[float, float, float]]] = {"plain POST": [], "plain read+POST": [], "sink": []}
    if baseline is not None:
        results["sink, baseline writer"] = []
    batches = {"sink": args.max_batch, **{f"sink, max_batch {n}": n for n in args.also_max_batch}}
    results.update({name: [] for name in batches if name not in results})
    merges = {f"sink, {n} report(s)/transaction": n for n in args.also_reports_per_transaction}
    results.update({name: [] for name in merges})
    with LocalBroker() as broker:
        for rnd in range(args.rounds):
            for name in results:
                with Medplum() as server:
                    if name.startswith("sink"):
                        row = asyncio.run(sink_rate(broker.bootstrap_servers, server.url, records, args.in_flight,
                                                    server.proc.pid, baseline if name == "sink, baseline writer"
                                                    else None, batches.get(name), merges.get(name)))
                    else:
                        row = asyncio.run(plain(server.url, records, args.in_flight,
                                                like_sink=name != "plain POST", server_pid=server.proc.pid))
                results[name].append(row)
                print(f"round {rnd + 1} {name}: {row[0]:.1f} reports/s, CPU ms per report: client "
                      f"{row[1]:.2f}, server {row[2]:.2f}  (load {os.getloadavg()[0]:.2f})")
        with Medplum() as server:
            lat = asyncio.run(sink_latency(broker.bootstrap_servers, server.url, latency_records, args.rate,
                                           args.in_flight))
        with Medplum() as server:
            plain_lat = asyncio.run(plain_latency(server.url, latency_records, args.rate))
    med = {k: [statistics.median(r[i] for r in v) for i in range(3)] for k, v in results.items()}
    # reports/s: records landed per second (one report version each); the plain loops send a transaction per report
    print("\n| variant | reports/s (median) | rounds | CPU ms / report: client + server = total (median) |")
    print("|---|---|---|---|")
    for name, rows in results.items():
        m = med[name]
        print(f"| {name} | {m[0]:.1f} | {', '.join(f'{r[0]:.0f}' for r in rows)} | "
              f"{m[1]:.2f} + {m[2]:.2f} = {m[1] + m[2]:.2f} |")
    base, sink = med["plain POST"], med["sink"]
    print(f"\nsink vs plain POST: {100 * (sink[0] / base[0] - 1):+.1f} % reports/s (median); "
          f"{100 * ((sink[1] + sink[2]) / (base[1] + base[2]) - 1):+.1f} % CPU per report (client + server)")
    for name, values in (("sink, record -> server-accepted", lat), ("plain POST round trip", plain_lat)):
        print(f"latency at {args.rate:g} msg/s, {name}, {len(values)} records: p50 {percentile(values, 50):.0f} ms, "
              f"p95 {percentile(values, 95):.0f} ms, p99 {percentile(values, 99):.0f} ms, max {max(values):.0f} ms")


if __name__ == "__main__":
    main()
