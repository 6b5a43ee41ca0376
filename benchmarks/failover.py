"""Consumer-group failover of `radlabel run` through a real Tansu broker: how long a SIGKILLed instance's
partitions sit idle, for several session timeouts, and what static membership (`kafka.group_instance_id`,
KIP-345) changes when the killed instance is restarted at once.

    PYTHONPATH=. python benchmarks/failover.py [--runs 3] [--timeouts 10000,6000,3000] [--rate 50] [--json out.json]

Each run: fresh topics (PARTITIONS input partitions), two real `radlabel run` processes in one group (rule
labeler), a producer that sends --rate msg/s round-robin over the partitions (so every partition gets a record
about every PARTITIONS/rate seconds), and a tail of the output topic. Once both instances own partitions and
output flows from every partition, the instance "b" is SIGKILLed (or SIGTERMed). Per partition b owned, the gap
is (timestamp of the first output record produced from that partition after the kill) - (kill time); output
records carry source-partition/-offset/-timestamp headers, and their timestamp is set by the connector's
producer when it sends the Bundle. Same clock for everything (one machine). End-to-end latency = output
timestamp - input timestamp, for records sent in three windows around the kill. Partition ownership and
rebalances come from the connectors' own `partitions_assigned` / `partitions_revoked` log events.

Scenarios: `kill` (SIGKILL b, no restart) per session timeout; `restart` (SIGKILL b and start it again at once,
without and with a group instance id); `orphan` (b does not come back: SIGTERM without an id, where it leaves the
group; SIGTERM and SIGKILL with an id, where a static member sends no LeaveGroup). A partition that produced no
output before the run gave up (session timeout + --limit-s) is reported as "never". Results:
benchmarks/failover.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from connector.stream.broker import LocalBroker, create_topics
from connector.stream.synthetic import oru_message
from benchmarks.measure import percentile

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6



def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Topics:
    input: str
    output: str
    dlq: str
    group: str

    @classmethod
    def fresh(cls) -> Topics:
        s = uuid.uuid4().hex[:6]
        return cls(f"fo-in-{s}", f"fo-out-{s}", f"fo-dlq-{s}", f"fo-g-{s}")


@dataclass
class Instance:
    """One `radlabel run` process; its JSON log is parsed for assignment events."""

    name: str
    log: Path
    proc: subprocess.Popen[bytes]
    started_ms: int

    def events(self) -> list[dict]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    continue
        return out

    def assignments(self) -> list[tuple[int, set[int]]]:
        """(time ms, partitions) of each partitions_assigned event of this process."""
        from datetime import datetime

        result = []
        for e in self.events():
            if e.get("event") == "partitions_assigned":
                ts = int(datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp() * 1000)
                result.append((ts, {int(p.rsplit(":", 1)[1]) for p in e["partitions"]}))
        return result

    def generation(self) -> int | None:
        """The group generation of this process's last join, from aiokafka's "Joined group" log line."""
        gens = [int(e["event"].split("(generation ")[1].split(")")[0]) for e in self.events()
                if str(e.get("event", "")).startswith("Joined group")]
        return gens[-1] if gens else None

    def owned(self) -> set[int]:
        a = self.assignments()
        return a[-1][1] if a else set()


def start_instance(name: str, bootstrap: str, topics: Topics, session_timeout_ms: int, instance_id: str | None,
                   log_dir: Path) -> Instance:
    env = {**os.environ, "PYTHONPATH": str(REPO), "RADLABEL_LOG_LEVEL": "INFO",
           "RADLABEL_KAFKA__SESSION_TIMEOUT_MS": str(session_timeout_ms)}
    if instance_id:
        env["RADLABEL_KAFKA__GROUP_INSTANCE_ID"] = instance_id
    cmd = [sys.executable, "-m", "connector.cli", "run", "--bootstrap-servers", bootstrap, "--input-topic",
           topics.input, "--output-topic", topics.output, "--dead-letter-topic", topics.dlq, "--group",
           topics.group, "--http-port", "-1"]
    log = log_dir / f"{name}-{uuid.uuid4().hex[:4]}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdin=subprocess.DEVNULL, stdout=fh, stderr=fh)
    return Instance(name, log, proc, now_ms())


@dataclass
class Flow:
    """The paced producer and the output tail of one run."""

    sent: dict[tuple[int, int], int] = field(default_factory=dict)  # (partition, offset) -> input ts
    outputs: list[tuple[int, int, int]] = field(default_factory=list)  # (partition, offset, output ts)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def produce(self, bootstrap: str, topic: str, rate: float) -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
        await producer.start()
        try:
            pending = []
            started, i = time.monotonic(), 0
            while not self.stop.is_set():
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                ts = now_ms()
                pending.append((ts, await producer.send(topic, oru_message(i), partition=i % PARTITIONS,
                                                        timestamp_ms=ts)))
                i += 1
                if len(pending) >= 50:
                    for t, fut in pending:
                        meta = await fut
                        self.sent[(meta.partition, meta.offset)] = t
                    pending.clear()
            for t, fut in pending:
                meta = await fut
                self.sent[(meta.partition, meta.offset)] = t
        finally:
            await producer.stop()

    async def tail(self, bootstrap: str, topic: str, done: asyncio.Event) -> None:
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                    enable_auto_commit=False, fetch_max_wait_ms=20)
        await consumer.start()
        try:
            while not done.is_set():
                for records in (await consumer.getmany(timeout_ms=100)).values():
                    for r in records:
                        h = {k: v.decode() for k, v in r.headers}
                        self.outputs.append((int(h["source-partition"]), int(h["source-offset"]), r.timestamp))
        finally:
            await consumer.stop()

    def first_output_after(self, partition: int, t_ms: int) -> int | None:
        stamps = [ts for p, _, ts in self.outputs if p == partition and ts >= t_ms]
        return min(stamps) if stamps else None

    def flowing(self, since_ms: int) -> set[int]:
        return {p for p, _, ts in self.outputs if ts >= since_ms}

    def longest_stall(self, partition: int, start_ms: int, end_ms: int) -> int:
        """Longest time without any output from this partition in [start, end] (a rebalance can also idle a
        partition that the survivor owned, for a while, after its first output post-kill)."""
        stamps = sorted({ts for p, _, ts in self.outputs if p == partition and start_ms <= ts <= end_ms})
        points = [start_ms, *stamps, end_ms]
        return max(b - a for a, b in zip(points, points[1:]))


async def wait_until(predicate, timeout_s: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(step)
    return predicate()


def latency_stats(flow: Flow, lo_ms: int, hi_ms: int) -> dict:
    first: dict[tuple[int, int], int] = {}
    for p, o, ts in flow.outputs:
        first[(p, o)] = min(ts, first.get((p, o), ts))
    lat = [first[k] - t for k, t in flow.sent.items() if lo_ms <= t < hi_ms and k in first]
    if not lat:
        return {"n": 0}
    return {"n": len(lat), "p50_ms": percentile(lat, 50), "p99_ms": percentile(lat, 99), "max_ms": max(lat)}


async def one_run(bootstrap: str, log_dir: Path, *, session_timeout_ms: int, mode: str, static: bool,
                  rate: float, warm_s: float, settle_s: float, limit_after_timeout_s: float,
                  simultaneous: bool) -> dict:
    """mode: kill (SIGKILL b), restart (SIGKILL b, start b again at once), term (SIGTERM b, graceful stop)."""
    topics = Topics.fresh()
    await create_topics(bootstrap, {topics.input: PARTITIONS, topics.output: PARTITIONS, topics.dlq: 1})
    ids = {"a": "radlabel-0", "b": "radlabel-1"} if static else {"a": None, "b": None}
    a = start_instance("a", bootstrap, topics, session_timeout_ms, ids["a"], log_dir)
    if not simultaneous:
        # As in a real deployment, members arrive one after the other, so the group has rebalanced at least once.
        # (Started together, both stay in Tansu's generation 0, and aiokafka sends LeaveGroup only from a
        # generation > 0: a graceful stop would then not hand its partitions over; see failover.md.)
        if not await wait_until(lambda: a.owned() == set(range(PARTITIONS)), 60):
            raise RuntimeError(f"first member did not get every partition (logs in {log_dir})")
    b = start_instance("b", bootstrap, topics, session_timeout_ms, ids["b"], log_dir)
    flow = Flow()
    done = asyncio.Event()
    tail = asyncio.create_task(flow.tail(bootstrap, topics.output, done))
    producer = asyncio.create_task(flow.produce(bootstrap, topics.input, rate))
    instances = [a, b]
    try:
        # Both members hold partitions, together all of them, and output flows from every partition.
        ok = await wait_until(lambda: a.owned() and b.owned() and (a.owned() | b.owned()) == set(range(PARTITIONS))
                              and not (a.owned() & b.owned()), 60)
        if not ok:
            raise RuntimeError(f"group did not settle: a={a.owned()} b={b.owned()} (logs in {log_dir})")
        mark = now_ms()
        if not await wait_until(lambda: flow.flowing(mark) == set(range(PARTITIONS)), 30):
            raise RuntimeError("output does not flow from every partition")
        await asyncio.sleep(warm_s)
        victim = b.owned()
        victim_generation = b.generation()
        survivor_before = a.owned()
        events_before = len(a.assignments())
        kill_ms = now_ms()
        if mode == "term":
            b.proc.send_signal(signal.SIGTERM)
            b.proc.wait(30)
        else:
            b.proc.send_signal(signal.SIGKILL)
            b.proc.wait(10)
        b2 = None
        if mode == "restart":
            b2 = start_instance("b2", bootstrap, topics, session_timeout_ms, ids["b"], log_dir)
            instances.append(b2)
        resumed = await wait_until(lambda: all(flow.first_output_after(p, kill_ms) for p in range(PARTITIONS)),
                                   session_timeout_ms / 1000 + limit_after_timeout_s)
        await asyncio.sleep(settle_s)
        end_ms = now_ms()
        # None: no output from that partition again before the run ended.
        firsts = {p: flow.first_output_after(p, kill_ms) for p in range(PARTITIONS)}
        gaps = {p: (None if f is None else f - kill_ms) for p, f in firsts.items()}
        stalls = {p: flow.longest_stall(p, kill_ms, end_ms) for p in range(PARTITIONS)}
    finally:
        flow.stop.set()
        await producer
        # Let the last records through before the tail stops.
        await wait_until(lambda: set(flow.sent) <= {(p, o) for p, o, _ in flow.outputs}, 15)
        done.set()
        await tail
        for inst in instances:
            if inst.proc.poll() is None:
                inst.proc.send_signal(signal.SIGTERM)
        for inst in instances:
            try:
                inst.proc.wait(30)
            except subprocess.TimeoutExpired:
                inst.proc.kill()
                inst.proc.wait()
    victim_gaps = [gaps[p] for p in sorted(victim)]
    recovered_ms = end_ms if None in victim_gaps else kill_ms + max(victim_gaps)
    a_after = [(t - kill_ms, sorted(ps)) for t, ps in a.assignments()[events_before:]]
    result = {
        "session_timeout_ms": session_timeout_ms, "mode": mode, "static": static, "resumed": resumed,
        "victim_partitions": sorted(victim), "victim_generation": victim_generation, "survivor_partitions_before": sorted(survivor_before),
        "victim_gap_ms": victim_gaps, "victim_gap_max_ms": None if None in victim_gaps else max(victim_gaps),
        "observed_ms": end_ms - kill_ms,
        # Longest time without output after the kill, for the survivor's own partitions (collateral of a rebalance).
        "survivor_stall_max_ms": max(stalls[p] for p in survivor_before),
        # Rebalances the survivor went through after the kill: (ms after the kill, partitions it then held).
        "survivor_assignments_after_kill": a_after,
        "restarted_assignments": ([(t - kill_ms, sorted(ps)) for t, ps in b2.assignments()] if b2 else None),
        "restarted_started_after_ms": (b2.started_ms - kill_ms) if b2 else None,
        "latency_before": latency_stats(flow, kill_ms - int(warm_s * 1000) + 1000, kill_ms - 500),
        "latency_around": latency_stats(flow, kill_ms - 500, recovered_ms),
        "latency_after": latency_stats(flow, recovered_ms + 1000, end_ms),
        "inputs": len(flow.sent),
        "missing": len(set(flow.sent) - {(p, o) for p, o, _ in flow.outputs}),
        "duplicates": len(flow.outputs) - len({(p, o) for p, o, _ in flow.outputs}),
        "logs": [str(i.log) for i in instances],
    }
    return result


def summarize(results: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for r in results:
        groups.setdefault((r["mode"], r["static"], r["session_timeout_ms"]), []).append(r)
    rows = []
    for (mode, static, timeout), rs in groups.items():
        gaps = [g for r in rs for g in r["victim_gap_ms"]]
        done = [g for g in gaps if g is not None]
        around_p99 = [r["latency_around"].get("p99_ms", 0) for r in rs]
        rows.append({
            "mode": mode, "static": static, "session_timeout_ms": timeout, "runs": len(rs),
            "partitions_not_resumed": len(gaps) - len(done),
            "observed_s": min(r["observed_ms"] for r in rs) / 1000,
            "gap_median_s": statistics.median(done) / 1000 if done else None,
            "gap_max_s": max(done) / 1000 if done else None,
            "per_run_worst_s": [None if r["victim_gap_max_ms"] is None else r["victim_gap_max_ms"] / 1000 for r in rs],
            "survivor_stall_max_s": max(r["survivor_stall_max_ms"] for r in rs) / 1000,
            "before_p99_ms": statistics.median(r["latency_before"].get("p99_ms", 0) for r in rs),
            "around_p50_ms": statistics.median(r["latency_around"].get("p50_ms", 0) for r in rs),
            "around_p99_ms": statistics.median(around_p99), "around_max_ms": max(r["latency_around"].get("max_ms", 0)
                                                                                  for r in rs),
            "after_p99_ms": statistics.median(r["latency_after"].get("p99_ms", 0) for r in rs),
            "survivor_rebalances": [len(r["survivor_assignments_after_kill"]) for r in rs],
            "missing": sum(r["missing"] for r in rs), "duplicates": sum(r["duplicates"] for r in rs),
        })
    return rows


def fmt_s(value: float | None, observed_s: float) -> str:
    return f"> {observed_s:.0f} (never)" if value is None else f"{value:.1f}"


def print_rows(rows: list[dict]) -> None:
    print("| scenario | session timeout ms | runs | gap median s | gap max s | worst per run s | survivor stall max s "
          "| p99 before ms | p50 / p99 / max around ms | p99 after ms | survivor rebalances | missing | dup |")
    print("|---|---:|---:|---:|---:|---|---:|---:|---|---:|---|---:|---:|")
    for r in rows:
        name = f"{r['mode']}{' + group_instance_id' if r['static'] else ''}"
        obs = r["observed_s"]
        print(f"| {name} | {r['session_timeout_ms']} | {r['runs']} | {fmt_s(r['gap_median_s'], obs)} "
              f"| {fmt_s(r['gap_max_s'], obs)} | {', '.join(fmt_s(w, obs) for w in r['per_run_worst_s'])} "
              f"| {r['survivor_stall_max_s']:.1f} "
              f"| {r['before_p99_ms']:.0f} | {r['around_p50_ms']:.0f} / {r['around_p99_ms']:.0f} / "
              f"{r['around_max_ms']:.0f} | {r['after_p99_ms']:.0f} | {r['survivor_rebalances']} "
              f"| {r['missing']} | {r['duplicates']} |")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--timeouts", default="10000,6000,3000", help="session_timeout_ms values for `kill`")
    parser.add_argument("--restart-timeout", type=int, default=10000, help="session_timeout_ms for restart/term")
    parser.add_argument("--scenarios", default="kill,restart,orphan",
                        help="kill: SIGKILL per --timeouts; restart: SIGKILL + immediate restart, without and with "
                             "an instance id; orphan: a static member that does not come back (SIGKILL and SIGTERM, "
                             "with an id) and SIGTERM without one, --orphan-runs times")
    parser.add_argument("--orphan-runs", type=int, default=1)
    parser.add_argument("--simultaneous", action="store_true",
                        help="start both members at once (default: the second once the first owns every partition)")
    parser.add_argument("--limit-s", type=float, default=30.0,
                        help="give up waiting for a partition this long after the session timeout")
    parser.add_argument("--rate", type=float, default=50.0)
    parser.add_argument("--warm-s", type=float, default=5.0)
    parser.add_argument("--settle-s", type=float, default=3.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--keep-logs", type=Path, help="directory for the connector and broker logs")
    args = parser.parse_args()

    log_dir = args.keep_logs or Path(tempfile.mkdtemp(prefix="failover-"))
    log_dir.mkdir(parents=True, exist_ok=True)
    plan: list[dict] = []
    scenarios = args.scenarios.split(",")
    for _ in range(args.runs):
        if "kill" in scenarios:
            plan += [dict(session_timeout_ms=int(t), mode="kill", static=False) for t in args.timeouts.split(",")]
        if "restart" in scenarios:
            plan += [dict(session_timeout_ms=args.restart_timeout, mode="restart", static=s) for s in (False, True)]
    if "orphan" in scenarios:
        for _ in range(args.orphan_runs):
            plan += [dict(session_timeout_ms=args.restart_timeout, mode=m, static=s)
                     for m, s in (("term", False), ("term", True), ("kill", True))]
    results = []
    print(f"# {platform.machine()} {platform.processor() or ''} {os.cpu_count()} cpu, Python "
          f"{platform.python_version()}, load before {os.getloadavg()[0]:.2f}; logs in {log_dir}", flush=True)
    with LocalBroker(log_path=log_dir / "tansu.log") as broker:
        for spec in plan:
            r = await one_run(broker.bootstrap_servers, log_dir, rate=args.rate, warm_s=args.warm_s,
                              settle_s=args.settle_s, limit_after_timeout_s=args.limit_s,
                              simultaneous=args.simultaneous, **spec)
            results.append(r)
            print(json.dumps({k: r[k] for k in ("mode", "static", "session_timeout_ms", "victim_partitions",
                                                "victim_generation",
                                                "victim_gap_ms", "survivor_stall_max_ms",
                                                "survivor_assignments_after_kill", "restarted_assignments",
                                                "restarted_started_after_ms", "latency_around", "missing",
                                                "duplicates")}), flush=True)
    rows = summarize(results)
    print(f"# load after {os.getloadavg()[0]:.2f}; members started {'together' if args.simultaneous else 'staggered'}")
    print_rows(rows)
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "runs": results}, indent=1))


if __name__ == "__main__":
    asyncio.run(main())
