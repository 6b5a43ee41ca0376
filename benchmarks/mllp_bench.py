"""MLLP gateway throughput and ACK latency through a real Tansu broker, side by side in one run with a plain
aiokafka produce loop (acks=all) of the same bytes: the physical limit of this broker for these records.

    PYTHONPATH=. python benchmarks/mllp_bench.py [--messages 3000] [--rounds 3] [--rate 100 --seconds 15]

The gateway runs as a real `radlabel mllp` process (log level WARNING: the per-message INFO line is measured
separately with --info-logs). Clients are plain asyncio sockets in this process, each connection sending one
message and waiting for its ACK, as interface engines do. Variants run round-robin over --rounds so machine load
hits each alike; the table reports the median round. Results: benchmarks/mllp.md.

- gateway, C connections: N messages spread over C connections; msg/s = N / wall time from first send to last ACK.
- plain loop, C senders: the same N records produced by C asyncio tasks, each awaiting its record's acks=all
  before the next (the gateway's concurrency shape without the socket, parsing and ACK).
- plain loop, pipelined: all N records sent, then awaited together (aiokafka batches freely): the broker's limit.
- --baseline-repo DIR: a gateway from another checkout (an earlier commit) and the shipped one, back to back in
  each round at 8 connections, with each process's CPU per message: a before/after measured in the same run.
- latency at R msg/s: one connection (one sender task for the plain loop), sends paced at R/s, time from the
  frame written to its ACK read (plain: send() to the acks=all future resolved).
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
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from connector.stream.broker import LocalBroker, create_topics
from connector.stream.synthetic import oru_message
from benchmarks.measure import percentile, proc_cpu_s

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 3
VT, FS_CR = b"\x0b", b"\x1c\r"




# Benchmark-only variant (not what radlabel ships): key every record by MSH-10, skipping the parse_reports call
# that yields the connector's facility|accession key, to show what that parse costs.
_HEADER_KEY = ("import sys, connector.mllp.records as r\n"
               "r.message_key = lambda message, msh: msh.control_id if msh is not None else None\n"
               "from connector.cli import main\nsys.argv[0] = 'radlabel'\nmain()\n")


def start_gateway(bootstrap: str, topic: str, level: str, header_key: bool = False,
                  repo: Path = REPO) -> tuple[subprocess.Popen, int]:
    env = {**os.environ, "PYTHONPATH": str(repo), "RADLABEL_LOG_LEVEL": level}
    entry = ["-c", _HEADER_KEY] if header_key else ["-m", "connector.cli"]
    proc = subprocess.Popen([sys.executable, *entry, "mllp", "--bootstrap-servers", bootstrap,
                             "--host", "127.0.0.1", "--port", "0", "--topic", topic, "--http-port", "-1"],
                            cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    return proc, json.loads(line)["port"]


# -- gateway clients ---------------------------------------------------------------------------------------------
async def mllp_connection(port: int, messages: list[bytes], latencies: list[float] | None = None,
                          rate: float | None = None) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.perf_counter()
    for i, message in enumerate(messages):
        if rate:
            delay = started + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        t0 = time.perf_counter()
        writer.write(VT + message + FS_CR)
        reply = await reader.readuntil(FS_CR)
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
        if b"MSA|AA|" not in reply:
            raise RuntimeError(f"not accepted: {reply[:200]!r}")
    writer.close()


async def gateway_rate(port: int, messages: list[bytes], connections: int) -> float:
    t0 = time.perf_counter()
    await asyncio.gather(*(mllp_connection(port, messages[c::connections]) for c in range(connections)))
    return len(messages) / (time.perf_counter() - t0)


# -- plain produce loop ------------------------------------------------------------------------------------------
async def plain_rate(producer: AIOKafkaProducer, topic: str, messages: list[bytes], senders: int | None) -> float:
    t0 = time.perf_counter()
    if senders is None:  # pipelined
        futures = [await producer.send(topic, m, key=str(i).encode()) for i, m in enumerate(messages)]
        await asyncio.gather(*futures)
    else:
        async def one(part: list[bytes], offset: int) -> None:
            for i, m in enumerate(part):
                await (await producer.send(topic, m, key=str(offset + i).encode()))

        await asyncio.gather(*(one(messages[c::senders], c * len(messages)) for c in range(senders)))
    return len(messages) / (time.perf_counter() - t0)


async def plain_latency(producer: AIOKafkaProducer, topic: str, messages: list[bytes], rate: float) -> list[float]:
    out = []
    started = time.perf_counter()
    for i, m in enumerate(messages):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        t0 = time.perf_counter()
        await (await producer.send(topic, m, key=str(i).encode()))
        out.append(time.perf_counter() - t0)
    return out


async def main(args: argparse.Namespace) -> dict:
    messages = [oru_message(i, padding_lines=args.padding_lines) for i in range(args.messages)]
    latency_messages = [oru_message(100_000 + i, padding_lines=args.padding_lines)
                        for i in range(int(args.rate * args.seconds))]
    results: dict[str, list[float]] = {}
    with LocalBroker() as broker:
        topic = f"mllp-bench-{uuid.uuid4().hex[:8]}"
        plain_topic = topic + "-plain"
        await create_topics(broker.bootstrap_servers, {topic: PARTITIONS, plain_topic: PARTITIONS})
        gateway, port = start_gateway(broker.bootstrap_servers, topic, "WARNING")
        header_gateway, header_port = start_gateway(broker.bootstrap_servers, topic, "WARNING", header_key=True)
        baseline = (start_gateway(broker.bootstrap_servers, topic, "WARNING", repo=args.baseline_repo)
                    if args.baseline_repo else None)
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all",
                                    enable_idempotence=False, linger_ms=0, max_request_size=16 * 1_048_576)
        await producer.start()
        try:
            await gateway_rate(port, messages[:200], 8)  # warm-up: connections, metadata, code paths
            await gateway_rate(header_port, messages[:200], 8)
            await plain_rate(producer, plain_topic, messages[:200], 8)
            if baseline is not None:
                await gateway_rate(baseline[1], messages[:200], 8)
            ab: dict[str, dict[str, list[float]]] = {"baseline": {"msg_s": [], "cpu_ms": []},
                                                     "shipped": {"msg_s": [], "cpu_ms": []}}
            ab_cpu_s = 0.0  # the shipped gateway's CPU in the A/B pairs, kept out of its CPU figure below
            cpu0 = proc_cpu_s(gateway.pid)
            gateway_msgs = 0
            for _ in range(args.rounds):
                if baseline is not None:
                    # A/B pair: the baseline checkout's gateway and the shipped one, back to back, 8 connections,
                    # each with its own process CPU over its round.
                    for label, (proc, gport) in (("baseline", baseline), ("shipped", (gateway, port))):
                        before = proc_cpu_s(proc.pid)
                        ab[label]["msg_s"].append(await gateway_rate(gport, messages, 8))
                        spent = proc_cpu_s(proc.pid) - before
                        ab[label]["cpu_ms"].append(spent * 1000 / len(messages))
                        ab_cpu_s += spent if label == "shipped" else 0.0
                for name, coro in (
                    ("gateway, 1 connection", lambda: gateway_rate(port, messages, 1)),
                    ("gateway, 8 connections", lambda: gateway_rate(port, messages, 8)),
                    ("gateway, 8 connections, MSH-10 key (variant, not shipped)",
                     lambda: gateway_rate(header_port, messages, 8)),
                    ("plain loop, 1 sender", lambda: plain_rate(producer, plain_topic, messages, 1)),
                    ("plain loop, 8 senders", lambda: plain_rate(producer, plain_topic, messages, 8)),
                    ("plain loop, pipelined", lambda: plain_rate(producer, plain_topic, messages, None)),
                ):
                    results.setdefault(name, []).append(await coro())
                    gateway_msgs += len(messages) if name.startswith("gateway") and "variant" not in name else 0
            cpu_ms = (proc_cpu_s(gateway.pid) - cpu0 - ab_cpu_s) * 1000 / gateway_msgs
            header_gateway.terminate()
            header_gateway.wait(20)
            if baseline is not None:
                baseline[0].terminate()
                baseline[0].wait(20)
            lat_gateway: list[float] = []
            await mllp_connection(port, latency_messages, lat_gateway, rate=args.rate)
            lat_plain = await plain_latency(producer, plain_topic, latency_messages, args.rate)
            info_rate = None
            if args.info_logs:
                gateway.terminate()
                gateway.wait(20)
                gateway, port = start_gateway(broker.bootstrap_servers, topic, "INFO")
                await gateway_rate(port, messages[:200], 8)
                info_rate = statistics.median([await gateway_rate(port, messages, 8) for _ in range(args.rounds)])
        finally:
            await producer.stop()
            gateway.terminate()
            gateway.wait(20)
    lat = {name: {"p50_ms": percentile(v, 50) * 1000, "p99_ms": percentile(v, 99) * 1000,
                  "max_ms": max(v) * 1000, "n": len(v)}
           for name, v in (("gateway", lat_gateway), ("plain loop", lat_plain))}
    return {
        "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average": os.getloadavg(),
        "messages": args.messages, "message_bytes": statistics.mean(len(m) for m in messages),
        "obx_per_message": messages[0].count(b"\rOBX|"),
        "rounds": args.rounds,
        "throughput_msg_s": {name: {"median": statistics.median(v), "all": [round(x) for x in v]}
                             for name, v in results.items()},
        "gateway_cpu_ms_per_msg": cpu_ms,
        "latency": {"rate": args.rate, **lat},
        "gateway_8_connections_info_logs_msg_s": info_rate,
        "ab_8_connections": ({label: {"repo": str(args.baseline_repo) if label == "baseline" else str(REPO),
                                      "msg_s_median": statistics.median(v["msg_s"]),
                                      "cpu_ms_per_msg_median": statistics.median(v["cpu_ms"]),
                                      "msg_s": [round(x) for x in v["msg_s"]],
                                      "cpu_ms_per_msg": [round(x, 3) for x in v["cpu_ms"]]}
                              for label, v in ab.items()} if args.baseline_repo else None),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--padding-lines", type=int, default=12, help="synthetic report size (12: ~2.2 KB, 20 OBX)")
    parser.add_argument("--rate", type=float, default=100.0)
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--info-logs", action="store_true", help="also measure 8 connections with INFO logs")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--baseline-repo", type=Path,
                        help="a checkout of an earlier commit (git worktree add --detach DIR COMMIT): its gateway runs "
                             "beside the shipped one in each round, 8 connections, for a before/after in one run")
    arguments = parser.parse_args()
    if arguments.baseline_repo and not (arguments.baseline_repo / "connector" / "cli").is_dir():
        parser.error(f"--baseline-repo {arguments.baseline_repo}: not a radlabel checkout (no connector/cli); "
                     "make one with: git worktree add --detach DIR COMMIT")
    out = asyncio.run(main(arguments))
    text = json.dumps(out, indent=2)
    print(text)
    if arguments.json:
        arguments.json.write_text(text + "\n")
