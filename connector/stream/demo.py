"""`radlabel demo`: the whole product on the embedded default, in one process, leaving nothing running.

Local Tansu broker -> topics -> connector (rule labeler) -> publish the bundled sample ORU messages -> read
the output and dead-letter topics until every input is accounted for -> table + FHIR JSON files. A sample that is
not a chest radiograph publishes nothing: it is accounted for once the connector has committed past it, and shown as
skipped with the reason the pipeline's own triage gives.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

from mappings.terminology import LOCAL_SYSTEM, PRESENCE_QUALIFIER

from connector.settings import FhirSettings, KafkaSettings, Settings

_CERTAINTY_MARK = {code: mark for (code, _), mark in zip(PRESENCE_QUALIFIER.values(), ("+", "-", "?"))}


def sample_messages(directory: Path | None = None) -> list[tuple[str, bytes]]:
    """(file name, raw message) for every HL7 message in the sample directory (bundled samples by default)."""
    from connector import pipeline

    root: Any = directory if directory is not None else resources.files("connector").joinpath("samples")
    files = sorted((f for f in root.iterdir() if f.name.endswith((".hl7", ".txt", ".er7"))), key=lambda f: f.name)
    return [(f.name, message) for f in files for message in pipeline.split_messages(f.read_bytes())]


def expected_skips(raw: bytes) -> str | None:
    """The skip reason when every report of a message is triaged out (the connector's own rules), else None."""
    from connector import pipeline

    try:
        reports = pipeline.parse_reports(raw)
    except pipeline.MessageRejected:
        return None
    reasons = [pipeline.triage(report) for report in reports]
    if reports and all(reasons):
        return ", ".join(sorted({r.reason for r in reasons if r}))
    return None


def summarize_bundle(bundle: dict) -> tuple[str, list[str]]:
    """(report status, ["Cardiomegaly+", ...]) from a Bundle: DiagnosticReport.status, and for each live
    Observation its local CheXpert code and the presence qualifier in valueCodeableConcept (a bundle carries only
    the findings its version asserts; an entered-in-error one, which no bundle of ours holds, is not shown)."""
    status = "?"
    findings: list[str] = []
    for entry in bundle.get("entry", []):
        resource = entry.get("resource", {})
        kind = resource.get("resourceType")
        if kind == "DiagnosticReport":
            status = resource.get("status", status)
        if kind != "Observation" or resource.get("status") == "entered-in-error":
            continue
        names = [c.get("display") or c.get("code") for c in resource.get("code", {}).get("coding", [])
                 if c.get("system") == LOCAL_SYSTEM]
        marks = [_CERTAINTY_MARK[c.get("code")] for c in resource.get("valueCodeableConcept", {}).get("coding", [])
                 if c.get("code") in _CERTAINTY_MARK]
        if names and marks:
            findings.append(f"{names[0]}{marks[0]}")
    return status, findings


async def run_demo(out_dir: Path, samples_dir: Path | None, timeout_s: float,
                   echo: Callable[[str], None] = print) -> int:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    from connector.rules.labeler import RuleLabeler
    from connector.stream.app import StreamApp
    from connector.stream.broker import LocalBroker, create_topics

    messages = sample_messages(samples_dir)
    if not messages:
        echo("no sample messages found")
        return 1
    out_dir.mkdir(parents=True, exist_ok=True)
    with LocalBroker() as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, group_id="radlabel-demo",
                              session_timeout_ms=6000)
        await create_topics(broker.bootstrap_servers,
                            {kafka.input_topic: 3, kafka.output_topic: 3, kafka.dead_letter_topic: 1})
        echo(f"broker: Tansu on {broker.bootstrap_servers}; topics {kafka.input_topic} -> {kafka.output_topic} "
             f"(dead letters: {kafka.dead_letter_topic})")
        labeler = RuleLabeler()
        # standalone: the demo has no hospital FHIR server whose Patients and reports the bundles could reference.
        app = StreamApp(Settings(kafka=kafka, fhir=FhirSettings(profile="standalone")), labeler, http_port=-1)
        connector = asyncio.create_task(app.run())
        producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap_servers, acks="all")
        reader = AIOKafkaConsumer(kafka.output_topic, kafka.dead_letter_topic,
                                  bootstrap_servers=broker.bootstrap_servers, auto_offset_reset="earliest",
                                  enable_auto_commit=False)
        rows: list[tuple[int, str, str, str, str]] = []
        try:
            await producer.start()
            sent: dict[tuple[int, int], tuple[int, str]] = {}
            skips: dict[tuple[int, int], str] = {}
            for index, (name, raw) in enumerate(messages):
                meta = await producer.send_and_wait(kafka.input_topic, raw)
                sent[(meta.partition, meta.offset)] = (index, name)
                reason = expected_skips(raw)
                if reason:
                    skips[(meta.partition, meta.offset)] = reason
            echo(f"published {len(sent)} sample messages; connector labeling with the rule labeler ...")
            await reader.start()
            seen: set[tuple[int, int]] = set()
            deadline = time.monotonic() + timeout_s
            while seen != set(sent) and time.monotonic() < deadline:
                for coords, reason in skips.items():
                    # skipped = committed past with nothing published (commits follow every acknowledged output)
                    if coords not in seen and app._committed.get(TopicPartition(kafka.input_topic, coords[0]),
                                                                 0) > coords[1]:
                        seen.add(coords)
                        rows.append((sent[coords][0], "-", f"skipped: {reason}", sent[coords][1], "-"))
                batch = await reader.getmany(timeout_ms=500)
                for records in batch.values():
                    for rec in records:
                        headers = {k: v.decode() for k, v in rec.headers}
                        coords = (int(headers["source-partition"]), int(headers["source-offset"]))
                        seen.add(coords)
                        if rec.topic == kafka.output_topic:
                            path = out_dir / f"{headers['bundle-id']}.json"
                            path.write_bytes(rec.value)
                            status, findings = summarize_bundle(json.loads(rec.value))
                            rows.append((sent[coords][0], (rec.key or b"").decode(), status,
                                         " ".join(findings) or "(none)", str(path)))
                        else:
                            rows.append((sent[coords][0], "-", f"dead-letter: {headers.get('dlq-reason')}",
                                         sent[coords][1], "-"))
            missing = len(set(sent) - seen)
        finally:
            await reader.stop()
            await producer.stop()
            app.request_stop()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(connector, 30)
            await labeler.aclose()
    _print_table(rows, echo)
    echo(f"FHIR Bundles written to {out_dir.resolve()}  (+ positive, - negative, ? uncertain)")
    if missing:
        echo(f"{missing} sample message(s) produced no output within {timeout_s:.0f}s")
        return 1
    echo("broker and connector stopped; nothing left running")
    return 0


def _print_table(rows: list[tuple[int, str, str, str, str]], echo: Callable[[str], None]) -> None:
    # Grouped by accession, in publish order within one (a preliminary report before its correction); skipped
    # studies and dead letters last.
    rows_ = [row[1:] for row in sorted(rows, key=lambda r: (r[1] == "-", r[2].startswith("dead"), r[1], r[0]))]
    header = ("accession", "status", "findings", "FHIR JSON")
    widths = [max(len(header[i]), *(len(r[i]) for r in rows_)) if rows_ else len(header[i]) for i in range(3)]
    fmt = f"{{:<{widths[0]}}}  {{:<{widths[1]}}}  {{:<{widths[2]}}}  {{}}"
    echo(fmt.format(*header))
    for row in rows_:
        echo(fmt.format(*row))
