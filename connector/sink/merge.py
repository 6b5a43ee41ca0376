"""Several reports' first versions in one FHIR transaction (pure).

A server pays a fixed cost per HTTP request and per transaction (parsing, auth, the database transaction), and
the sink pays httpx's request path: on the Medplum engine one transaction carrying four reports landed them about
70 % faster than four transactions (benchmarks/sink.md). Only transactions that stay correct when combined are
merged:

- no conditional request of any kind (ifNoneExist, ifMatch, ifNoneMatch, ifModifiedSince, a search URL): the
  version check and conditional creates are decided per report, and servers run conditional entries under stricter
  isolation with their own size limits (Medplum: at most 8 entries);
- one resource written once: two reports writing the same resource (the labeler Device, one patient's Patient in
  the standalone profile) merge only when they write it byte for byte the same, and then it is written once (a
  transaction may not name one resource twice); otherwise the second report starts the next transaction;
- at most `max_entries` entries (servers cap transactions: Medplum 50 updates, Azure 500 entries).

The transaction is atomic: a merged one that the server refuses is resent report by report by the caller, so a bad
bundle is still a dead letter of its own and never takes other reports' labels with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

_CONDITIONAL = ("ifNoneExist", "ifMatch", "ifNoneMatch", "ifModifiedSince")
_MERGED_HEAD = b'{"resourceType":"Bundle","type":"transaction"'


@dataclass(frozen=True)
class Parts:
    """One report's transaction, serialised entry by entry so that merging copies bytes instead of parsing again."""

    head: bytes  # the Bundle without `entry`, serialised
    entries: tuple[bytes, ...]
    keys: tuple[tuple[str, ...], ...]  # per entry: the identities it writes (fullUrl, "METHOD url")
    mergeable: bool

    def whole(self) -> bytes:
        """The transaction alone, as `orjson.dumps` of the original Bundle would give it (field order aside)."""
        return _assemble(self.head, self.entries)


def split(transaction: dict) -> Parts:
    entries = transaction.get("entry") or []
    mergeable = transaction.get("type") == "transaction" and bool(entries)
    keys = []
    for entry in entries:
        request = entry.get("request") or {}
        url = str(request.get("url") or "")
        if request.get("method") not in ("PUT", "POST") or "?" in url or any(request.get(c) for c in _CONDITIONAL):
            mergeable = False
        keys.append(tuple(k for k in (entry.get("fullUrl"), f"{request.get('method')} {url}" if url else None) if k))
    head = orjson.dumps({k: v for k, v in transaction.items() if k != "entry"})
    return Parts(head, tuple(orjson.dumps(e) for e in entries), tuple(keys), mergeable)


def _assemble(head: bytes, entries: tuple[bytes, ...] | list[bytes]) -> bytes:
    opening = b"{" if head == b"{}" else head[:-1] + b","
    return opening + b'"entry":[' + b",".join(entries) + b"]}"


@dataclass
class Group:
    """Transactions merged so far; `add` says whether one more fits."""

    max_entries: int
    members: int = 0
    entries: list[bytes] = field(default_factory=list)
    _written: dict[str, bytes] = field(default_factory=dict)  # identity -> the entry that writes it

    def add(self, parts: Parts) -> bool:
        if not parts.mergeable:
            return False
        new: list[tuple[tuple[str, ...], bytes]] = []
        for keys, entry in zip(parts.keys, parts.entries):
            held = {self._written.get(k) for k in keys} - {None}
            if not held:
                new.append((keys, entry))
            elif held != {entry}:
                return False  # the same resource written differently: not in one transaction
        if self.members and len(self.entries) + len(new) > self.max_entries:
            return False
        for keys, entry in new:
            self.entries.append(entry)
            for k in keys:
                self._written[k] = entry
        self.members += 1
        return True

    def body(self) -> bytes:
        return _assemble(_MERGED_HEAD + b"}", self.entries)
