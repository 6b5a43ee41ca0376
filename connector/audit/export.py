"""`radlabel audit export`: Bundle records -> the flat audit table (one row per report version x observation) and
the events table (what published nothing, and why).

At-least-once delivery can put the same record on a topic twice; the copies are byte-identical, so an exact
duplicate (same Bundle id, same bytes) is kept once and counted. A value that is not a FHIR Bundle is counted as
unreadable and left out; nothing of it is logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson

from connector.audit.rows import PatientHasher, bundle_rows
from connector.audit.sources import BundleRecord


@dataclass
class Export:
    rows: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    bundles: int = 0
    duplicates: int = 0
    unreadable: int = 0
    _seen: set[tuple[str, bytes]] = field(default_factory=set, repr=False)
    _keyed: list[tuple[tuple[int, int], list[dict]]] = field(default_factory=list, repr=False)

    def add(self, record: BundleRecord, hasher: PatientHasher) -> None:
        try:
            bundle = orjson.loads(record.value)
        except orjson.JSONDecodeError:
            self.unreadable += 1
            return
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            self.unreadable += 1
            return
        fingerprint = (str(bundle.get("id")), hashlib.blake2b(record.value, digest_size=16).digest())
        if fingerprint in self._seen:
            self.duplicates += 1
            return
        self._seen.add(fingerprint)
        self.bundles += 1
        rows = bundle_rows(bundle, record.headers, hasher)
        if record.position is None:
            self.rows.extend(rows)
        else:
            self._keyed.append((record.position, rows))

    def finish(self) -> Export:
        """Topic records in (partition, offset) order, whatever order the fetches returned them in."""
        for _, rows in sorted(self._keyed, key=lambda item: item[0]):
            self.rows.extend(rows)
        self._keyed.clear()
        return self

    def summary(self) -> dict[str, Any]:
        from collections import Counter

        kinds = Counter((e["kind"], e["reason"]) for e in self.events)
        return {
            "bundles": self.bundles,
            "rows": len(self.rows),
            "duplicates_dropped": self.duplicates,
            "unreadable": self.unreadable,
            "dead_letters": sum(n for (k, _), n in kinds.items() if k == "dead-letter"),
            "skipped": sum(n for (k, _), n in kinds.items() if k == "skipped"),
        }


def export_records(records: Iterable[BundleRecord], hasher: PatientHasher, events: Iterable[dict] = ()) -> Export:
    out = Export()
    for record in records:
        out.add(record, hasher)
    out.events.extend(events)
    return out.finish()


async def export_async(records: AsyncIterable[BundleRecord], hasher: PatientHasher) -> Export:
    out = Export()
    async for record in records:
        out.add(record, hasher)
    return out.finish()
