"""Where the sink's cost per record goes, part by part (benchmarks/sink.md "Where the rest goes").

    PYTHONPATH=. python benchmarks/sink_parts.py [--records 256] [--repeats 10]

Client side, CPU time of this process in a tight loop over the benchmark's bundles (synthetic chest X-rays through
the real pipeline, as in benchmarks/sink.py): JSON parse, SHA-256 (and BLAKE2b, the cheaper-hash candidate),
read_record, plan, serialise; then read + plan + serialise for poll batches of 64 with the 64 parsed Bundles held
until the batch ends (the writer before this measurement) or dropped once serialised (the writer now), with the
cyclic GC on and off. Server side, CPU time of a fresh Medplum process (tests/fhir_server): one transaction as
the plain loop sends it and as the sink sends it (digest tag), a FHIR batch read of 64 absent Provenances, a
single read answered 404.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import os
import time
import uuid

import httpx
import orjson

from benchmarks.measure import proc_cpu_s
from benchmarks.sink import Medplum, build_records
from connector.sink.bundle_facts import read_record
from connector.sink.plan import ServerState, plan


def client_parts(records, repeats: int) -> None:
    headers = [{k: v.decode() for k, v in h} for _, _, h in records]
    values = [v for _, v, _ in records]
    facts = [read_record(v, h) for v, h in zip(values, headers)]
    transactions = [plan(f, ServerState()).transaction for f in facts]
    parts = {
        "orjson.loads": lambda i: orjson.loads(values[i]),
        "sha256": lambda i: hashlib.sha256(values[i]).hexdigest(),
        "blake2b-256": lambda i: hashlib.blake2b(values[i], digest_size=32).hexdigest(),
        "read_record (parse, digest, facts)": lambda i: read_record(values[i], headers[i]),
        "plan (first version)": lambda i: plan(facts[i], ServerState()),
        "orjson.dumps of the transaction": lambda i: orjson.dumps(transactions[i]),
    }
    for label, fn in parts.items():
        started = time.process_time()
        for _ in range(repeats):
            for i in range(len(values)):
                fn(i)
        print(f"client  {label}: {(time.process_time() - started) * 1e6 / (repeats * len(values)):.1f} µs/record")

    def batches(hold: bool) -> float:
        started = time.process_time()
        for _ in range(repeats):
            for start in range(0, len(values) - 63, 64):
                alive = []
                for i in range(start, start + 64):
                    f = read_record(values[i], headers[i])
                    body = orjson.dumps(plan(f, ServerState()).transaction)
                    alive.append(f if hold else body)
        return (time.process_time() - started) * 1e6 / (repeats * (len(values) // 64) * 64)

    gc.freeze()  # as the consume loop does at start
    for gc_on in (True, False):
        (gc.enable if gc_on else gc.disable)()
        for hold in (True, False):
            label = "64 parsed Bundles held" if hold else "each Bundle dropped once serialised"
            print(f"client  read + plan + serialise, {label}, GC {'on' if gc_on else 'off'}: "
                  f"{batches(hold):.1f} µs/record")
    gc.enable()


async def server_parts(records, url: str, pid: int, n: int) -> None:
    plain_h = {"content-type": "application/fhir+json", "prefer": "return=minimal"}
    async with httpx.AsyncClient(base_url=url + "/", timeout=60) as client:
        for _, value, _ in records[:20]:  # warm the engine up
            await client.post("", content=value, headers=plain_h)
        totals = {"plain": 0.0, "sink": 0.0}
        i = 20
        while i + 20 <= min(len(records), 20 + 2 * n):  # alternating chunks, so both see the same store size
            for kind in ("plain", "sink"):
                chunk = records[i:i + 10]
                i += 10
                bodies = [v if kind == "plain" else orjson.dumps(plan(read_record(
                    v, {k: x.decode() for k, x in h}), ServerState()).transaction) for _, v, h in chunk]
                started = proc_cpu_s(pid)
                for body in bodies:
                    assert (await client.post("", content=body, headers=plain_h)).status_code == 200
                totals[kind] += proc_cpu_s(pid) - started
        sent = (i - 20) // 2
        for kind, total in totals.items():
            print(f"server  one transaction, as the {kind} loop sends it: {total * 1000 / sent:.2f} ms")
        ids = [str(uuid.uuid4()) for _ in range(64)]
        batch = orjson.dumps({"resourceType": "Bundle", "type": "batch", "entry": [
            {"request": {"method": "GET", "url": f"Provenance/{i}"}} for i in ids]})
        started = proc_cpu_s(pid)
        for _ in range(20):
            assert (await client.post("", content=batch, headers={"content-type": "application/fhir+json"})
                    ).status_code == 200
        per_batch = (proc_cpu_s(pid) - started) * 1000 / 20
        print(f"server  FHIR batch read of 64 absent Provenances: {per_batch:.2f} ms ({per_batch / 64:.3f} ms per id)")
        started = proc_cpu_s(pid)
        for i in ids[:40]:
            assert (await client.get(f"Provenance/{i}")).status_code == 404
        print(f"server  one read answered 404: {(proc_cpu_s(pid) - started) * 1000 / 40:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    records = build_records(max(args.records, 64))
    print(f"load {os.getloadavg()}, {len(records)} bundles")
    client_parts(records, args.repeats)
    with Medplum() as server:
        asyncio.run(server_parts(records, server.url, server.proc.pid, len(records) // 2 - 20))


if __name__ == "__main__":
    main()
