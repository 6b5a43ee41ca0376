"""Where audit export reads published Bundles from: a window of an output topic, or a folder of Bundle files.

A folder is what `radlabel convert --out DIR` or `radlabel replay --to-files DIR` wrote: ``<bundle id>.json``
(the canonical Bundle bytes), ``dead-letter/<n>.json`` (rejects), ``index.jsonl`` when there is one (each Bundle's
file, key and record headers, in order: all of them from a replay, the report-version ones from convert), and from a
replay ``events.jsonl`` (every record or report that published nothing: dead letters and skips, with their reason
and source coordinates).

Besides the Bundles, both sources yield *events* — what published nothing and why — for the report's dead-letter
and skip rates: from the dead-letter topic, or from the folder's files.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

EVENT_COLUMNS: tuple[str, ...] = ("kind", "reason", "source_topic", "source_partition", "source_offset",
                                  "source_timestamp")


@dataclass(frozen=True)
class BundleRecord:
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    position: tuple[int, int] | None = None  # (partition, offset) of a topic record: export sorts by it


def _int(text: object) -> int | None:
    try:
        return int(text) if text not in (None, "") else None  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def event(kind: str, reason: str, headers: dict[str, str]) -> dict:
    return {"kind": kind, "reason": reason, "source_topic": headers.get("source-topic", ""),
            "source_partition": _int(headers.get("source-partition")),
            "source_offset": _int(headers.get("source-offset")),
            "source_timestamp": _int(headers.get("source-timestamp"))}


# -- folders -----------------------------------------------------------------------------------------------------
def folder_records(folder: Path) -> Iterator[BundleRecord]:
    """The folder's Bundles: in index.jsonl order with the headers it records when there is one (a replay's holds
    every record header, convert's the report-version ones), else by file name."""
    index = folder / "index.jsonl"
    if index.is_file():
        for line in index.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            entry = json.loads(line)
            path = folder / str(entry.get("file") or f"{entry.get('bundle-id')}.json")
            if path.is_file():
                headers = {k: str(v) for k, v in entry.items() if k not in ("file", "key") and v is not None}
                yield BundleRecord(path.read_bytes(), headers)
        return
    for path in sorted(folder.glob("*.json")):
        yield BundleRecord(path.read_bytes())


def folder_events(folder: Path) -> list[dict]:
    log = folder / "events.jsonl"
    if log.is_file():  # a replay's: dead letters and skips, with source coordinates
        out, seen = [], set()
        for line in log.read_text(encoding="utf-8").splitlines():
            if line.strip():
                item = json.loads(line)
                row = event(item["kind"], item["reason"], item.get("headers") or {})
                key = tuple(row.values())
                if key not in seen:  # a resumed replay may have logged its last uncommitted batch twice
                    seen.add(key)
                    out.append(row)
        return out
    events = []
    dead = folder / "dead-letter"
    for path in sorted(dead.glob("*.json"), key=lambda p: (len(p.stem), p.stem)) if dead.is_dir() else ():
        try:
            reason = json.loads(path.read_text(encoding="utf-8")).get("reason") or "unknown"
        except (OSError, ValueError):
            reason = "unreadable"
        events.append(event("dead-letter", reason, {}))
    return events


# -- topics ------------------------------------------------------------------------------------------------------
async def topic_records(consumer, window) -> AsyncIterator[BundleRecord]:  # noqa: ANN001 - aiokafka types
    """Every record of ``window`` (connector.stream.window.Window) in partition order; the consumer is started,
    has no group and commits nothing: reading for an audit moves nobody's offsets."""
    tps = window.partitions()
    live = [tp for tp in tps if window.ranges[tp.partition][0] < window.ranges[tp.partition][1]]
    if not live:
        return
    consumer.assign(live)
    for tp in live:
        consumer.seek(tp, window.ranges[tp.partition][0])
    remaining = set(live)
    while remaining:
        batch = await consumer.getmany(*remaining, timeout_ms=500, max_records=2000)
        for tp in sorted(batch, key=lambda t: t.partition):
            end = window.ranges[tp.partition][1]
            for record in batch[tp]:
                if record.offset >= end:
                    break
                yield BundleRecord(record.value or b"", {k: v.decode("utf-8", "replace") for k, v in record.headers},
                                   (record.partition, record.offset))
            if batch[tp] and batch[tp][-1].offset + 1 >= end:
                remaining.discard(tp)
        for tp in list(remaining):  # compacted or deleted tail: the position can pass the end without a record
            if await consumer.position(tp) >= window.ranges[tp.partition][1]:
                remaining.discard(tp)
