"""Decide what to send for one record, given what the server holds (pure).

- Stale: the server holds a newer version of the report (its Provenance's report-version, or a label's) -> skip.
- Duplicate: the server's Provenance carries this very record's digest -> skip (a replay writes nothing, so it
  adds no history versions either).
- Otherwise the record's transaction, plus:
  - If-Match on the Provenance the decision was made against: a concurrent writer of the same report (a second
    sink, a rebalance) makes the transaction fail with 412 instead of interleaving; the sink re-reads and decides
    again.
  - retiring: the report's label Observations on the server that this version no longer asserts are marked
    entered-in-error (or deleted), each with If-Match, in the same transaction, so the server never shows a mix
    of two versions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from connector.sink.bundle_facts import BundleFacts, is_ours
from connector.sink.version import ReportVersion, from_extension, newest

DIGEST_TAG_SYSTEM = "urn:radlabel:bundle-sha256"


@dataclass(frozen=True)
class ServerState:
    provenance: dict | None = None  # the report's Provenance as the server holds it
    observations: list[dict] = field(default_factory=list)  # label Observations found for the accession


@dataclass(frozen=True)
class Skip:
    reason: Literal["stale", "duplicate"]
    server_version: ReportVersion | None = None


@dataclass(frozen=True)
class Send:
    transaction: dict
    retired: int  # label Observations this transaction withdraws


def server_version(state: ServerState, report_id: str | None) -> ReportVersion | None:
    candidates = [from_extension(state.provenance)] if state.provenance else []
    candidates += [from_extension(o) for o in state.observations if is_ours(o, report_id)]
    return newest(candidates)


def _etag(resource: dict) -> str | None:
    version_id = (resource.get("meta") or {}).get("versionId")
    return f'W/"{version_id}"' if version_id else None


def _digest_of(resource: dict | None) -> str | None:
    for tag in ((resource or {}).get("meta") or {}).get("tag") or ():
        if tag.get("system") == DIGEST_TAG_SYSTEM:
            return tag.get("code")
    return None


def plan(facts: BundleFacts, state: ServerState, *,
         retire: Literal["entered-in-error", "delete"] = "entered-in-error") -> Skip | Send:
    held = server_version(state, facts.report_id)
    if held is not None and facts.version.older_than(held):
        return Skip("stale", held)
    if _digest_of(state.provenance) == facts.digest:
        return Skip("duplicate", held)

    # Copy on write: the record's bundle is shared, only the Provenance entry and the entry list are new (a deep
    # copy of a 25 KB bundle was the sink's largest CPU cost per record).
    entries = list(facts.bundle.get("entry") or ())
    for n, entry in enumerate(entries):
        resource = entry.get("resource") or {}
        if resource.get("resourceType") == "Provenance" and resource.get("id") == facts.provenance_id:
            meta = dict(resource.get("meta") or {}) if isinstance(resource.get("meta") or {}, dict) else {}
            tags = [t for t in meta.get("tag") or () if t.get("system") != DIGEST_TAG_SYSTEM]
            meta["tag"] = [*tags, {"system": DIGEST_TAG_SYSTEM, "code": facts.digest}]
            request = dict(entry.get("request") or {})
            if state.provenance is not None and _etag(state.provenance):
                request["ifMatch"] = _etag(state.provenance)
            entries[n] = {**entry, "resource": {**resource, "meta": meta}, "request": request}
    transaction = {**facts.bundle, "entry": entries}

    retired = 0
    if facts.retires:
        for obs in state.observations:
            if obs.get("id") in facts.observation_ids or obs.get("status") == "entered-in-error":
                continue
            if not is_ours(obs, facts.report_id):
                continue
            request: dict = {"url": f"Observation/{obs['id']}"}
            if _etag(obs):
                request["ifMatch"] = _etag(obs)
            if retire == "delete":
                transaction["entry"].append({"request": {"method": "DELETE", **request}})
            else:
                withdrawn = {k: v for k, v in obs.items() if k != "meta"}
                if (obs.get("meta") or {}).get("security"):
                    withdrawn["meta"] = {"security": obs["meta"]["security"]}
                withdrawn["status"] = "entered-in-error"
                transaction["entry"].append({"fullUrl": f"urn:uuid:{obs['id']}", "resource": withdrawn,
                                             "request": {"method": "PUT", **request}})
            retired += 1
    return Send(transaction, retired)


def resolve_conditional(transaction: dict, resolved: dict[str, str | None]) -> None:
    """Replace conditional references (``Patient?identifier=...``) by what the sink found: a literal reference, or,
    when nothing matched, the fullUrl of the bundle's own conditional create of that resource (``ifNoneExist``),
    which the server resolves inside the transaction. In place. Raises KeyError naming nothing (PHI) when a
    reference stays unresolvable; the caller dead-letters."""
    creates = {}
    for entry in transaction.get("entry") or ():
        request = entry.get("request") or {}
        if request.get("method") == "POST" and request.get("ifNoneExist") and entry.get("fullUrl"):
            creates[f"{request.get('url')}?{request['ifNoneExist']}"] = entry["fullUrl"]

    def walk(item: object) -> None:
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str) and "?" in ref:
                target = resolved.get(ref) or creates.get(ref)
                if target is None:
                    raise KeyError("unresolved conditional reference")
                item["reference"] = target
            for child in item.values():
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    for entry in transaction.get("entry") or ():
        walk(entry.get("resource"))
