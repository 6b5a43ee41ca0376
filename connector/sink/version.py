"""Report version order (helpers' bundle contract, docs/FHIR_SINK.md "Versions"): pure functions.

A version is ranked by (status rank, result time OBR-22, message time MSH-7): P=0 < F=1 < C=2, and A (amended) and
X (cancelled) rank with C. A record whose version is lower than the one the server holds for that report is stale:
an older version never overwrites a newer one, whatever order the records arrive in (input not keyed by accession,
replays, two connectors). Equal versions are applied again (a relabel by a new model, a replay): PUTs with the
same ids make that harmless.

The facts travel on the bundle itself (the `report-version` extension of its Provenance and label Observations),
so the server's copy of the Provenance says which version it holds; Kafka headers are only a fallback.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

VERSION_EXTENSION = "urn:radlabel:extension:report-version"
_RANK = {"P": 0, "F": 1, "C": 2, "A": 2, "X": 2}


@dataclass(frozen=True, order=False)
class ReportVersion:
    status: str  # P | F | C | X (A is read as C)
    result_time: str | None = None  # ISO 8601 as carried (OBR-22)
    message_time: str | None = None  # ISO 8601 as carried (MSH-7)

    def key(self) -> tuple[int, float, float]:
        """The order: rank, then result time, then message time; an unknown time sorts before any known one."""
        return (_RANK.get(self.status, -1), _instant(self.result_time), _instant(self.message_time))

    def older_than(self, other: ReportVersion) -> bool:
        return self.key() < other.key()


def _instant(value: str | None) -> float:
    """Seconds since the epoch for an ISO 8601 date/dateTime; -inf when absent or unreadable. A time without an
    offset (or a bare date) is read as UTC: both sides come from the same connector, so they agree."""
    if not value:
        return -math.inf
    text = value.strip().replace("Z", "+00:00")
    for candidate in (text, text + "-01", text + "-01-01"):  # FHIR allows partial dates: YYYY-MM, YYYY
        try:
            when = datetime.fromisoformat(candidate)
        except ValueError:
            continue
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        return when.timestamp()
    return -math.inf


def from_extension(resource: dict) -> ReportVersion | None:
    """The report-version extension of a resource (Provenance or label Observation), if it carries one."""
    extensions = resource.get("extension")
    for ext in extensions if isinstance(extensions, list) else ():
        if not isinstance(ext, dict) or ext.get("url") != VERSION_EXTENSION:
            continue
        inner = ext.get("extension")
        parts = {e.get("url"): e for e in (inner if isinstance(inner, list) else ()) if isinstance(e, dict)}
        status = (parts.get("status") or {}).get("valueCode")
        if not isinstance(status, str) or not status:
            return None
        return ReportVersion(
            status=status,
            result_time=(parts.get("resultTime") or {}).get("valueDateTime"),
            message_time=(parts.get("messageTime") or {}).get("valueDateTime"),
        )
    return None


def from_headers(headers: dict[str, str]) -> ReportVersion | None:
    status = headers.get("report-status") or ""
    if not status:
        return None
    return ReportVersion(status, headers.get("report-time") or None, headers.get("message-time") or None)


def newest(versions: list[ReportVersion | None]) -> ReportVersion | None:
    known = [v for v in versions if v is not None]
    return max(known, key=ReportVersion.key) if known else None
