"""What the sink needs to know about one output record, read from the Bundle itself (pure).

The record is the canonical transaction Bundle of one report version (helpers' bundle contract): label Observations
with a `urn:radlabel:label` identifier and the report's accession identifier, a Provenance with the report-version
extension, and, in the standalone profile, the Patient and DiagnosticReport.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from urllib.parse import unquote

import orjson

from connector.sink.version import ReportVersion, from_extension, from_headers

LABEL_SYSTEM = "urn:radlabel:label"
MACHINE_LABEL_CATEGORY = "urn:radlabel:codesystem:observation-category|machine-label"
_DR_CONDITIONAL = re.compile(r"^DiagnosticReport\?identifier=(?P<token>.+)$")


class NotABundle(ValueError):
    """The record is not a report-version transaction Bundle the sink can apply (a dead letter)."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Identifier:
    system: str
    value: str

    def token(self) -> str:
        """The FHIR search token system|value, with the search escapes for , | $ and \\."""
        return f"{_escape(self.system)}|{_escape(self.value)}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace(",", "\\,").replace("$", "\\$")


@dataclass(frozen=True)
class BundleFacts:
    bundle: dict
    digest: str  # sha256 of the record value: the same record applied twice is recognised on the server
    version: ReportVersion
    report_id: str | None
    accession: Identifier | None
    profile: str  # standalone | enrich
    provenance_id: str | None
    observation_ids: frozenset[str]  # the label Observations this version asserts

    @property
    def asserts_findings(self) -> bool:
        return bool(self.observation_ids)

    @property
    def retires(self) -> bool:
        """Whether this version retires what the server holds beyond it. A version that asserts nothing retires
        nothing (the clinical-safety rule), except a cancelled report, which withdraws every finding."""
        return self.asserts_findings or self.version.status == "X"


def read_record(value: bytes | None, headers: dict[str, str]) -> BundleFacts:
    try:
        bundle = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        raise NotABundle("invalid-bundle", "record value is not JSON") from None
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle" or bundle.get("type") != "transaction":
        raise NotABundle("invalid-bundle", "record value is not a FHIR transaction Bundle")
    entries = bundle.get("entry") or []
    # The shape the rest of the sink relies on, checked once here: a malformed record is a dead letter, never an
    # exception that would stop the stream.
    if not isinstance(entries, list) or not all(
            isinstance(e, dict) and isinstance(e.get("resource", {}), dict) and isinstance(e.get("request", {}), dict)
            for e in entries):
        raise NotABundle("invalid-bundle", "Bundle.entry is not a list of entries with resource/request objects")
    resources = [e.get("resource") or {} for e in entries]
    try:
        return _facts(bundle, resources, value, headers)
    except NotABundle:
        raise
    except (AttributeError, TypeError, ValueError) as exc:  # a field of the wrong JSON type somewhere inside
        raise NotABundle("invalid-bundle", f"Bundle content is not shaped as FHIR resources ({type(exc).__name__})"
                         ) from None


def _facts(bundle: dict, resources: list[dict], value: bytes | None, headers: dict[str, str]) -> BundleFacts:
    provenance = next((r for r in resources if r.get("resourceType") == "Provenance"), None)
    labels = [r for r in resources if r.get("resourceType") == "Observation" and _label_identifier(r) is not None]

    version = (from_extension(provenance) if provenance else None) or next(
        (v for v in map(from_extension, labels) if v is not None), None) or from_headers(headers)
    if version is None:
        raise NotABundle("no-report-version", "bundle carries no report-version extension and no report-status header")

    report_id = headers.get("report-id") or None
    if report_id is None and labels:
        report_id = _label_identifier(labels[0]).rsplit(":", 1)[0]  # type: ignore[union-attr]

    profile = headers.get("fhir-profile") or ("standalone" if any(
        r.get("resourceType") == "Patient" for r in resources) else "enrich")
    return BundleFacts(
        bundle=bundle,
        digest=hashlib.sha256(value or b"").hexdigest(),
        version=version,
        report_id=report_id,
        accession=_accession(labels, resources, bundle),
        profile=profile,
        provenance_id=provenance.get("id") if provenance else None,
        observation_ids=frozenset(r["id"] for r in labels if r.get("id")),
    )


def _label_identifier(resource: dict) -> str | None:
    for ident in resource.get("identifier") or ():
        if ident.get("system") == LABEL_SYSTEM and ident.get("value"):
            return ident["value"]
    return None


def is_ours(observation: dict, report_id: str | None) -> bool:
    """A label Observation this connector wrote for this report (not another system's, not another report's that
    happens to share the accession value)."""
    value = _label_identifier(observation)
    return value is not None and (report_id is None or value.startswith(report_id + ":"))


def _accession(labels: list[dict], resources: list[dict], bundle: dict) -> Identifier | None:
    """The report's accession identifier: the Provenance's source entity's identifier (present even when a
    cancelled version has no labels), else a label's second identifier, else the DiagnosticReport's ACSN
    identifier, else a conditional DiagnosticReport reference."""
    for res in resources:
        if res.get("resourceType") == "Provenance":
            for entity in res.get("entity") or ():
                ident = (entity.get("what") or {}).get("identifier") or {}
                if ident.get("system") and ident.get("value"):
                    return Identifier(ident["system"], ident["value"])
    for obs in labels:
        idents = obs.get("identifier") or ()
        if len(idents) > 1 and idents[1].get("system") and idents[1].get("value"):
            return Identifier(idents[1]["system"], idents[1]["value"])
    for res in resources:
        if res.get("resourceType") != "DiagnosticReport":
            continue
        for ident in res.get("identifier") or ():
            codes = [c.get("code") for c in ((ident.get("type") or {}).get("coding") or ())]
            if "ACSN" in codes and ident.get("system") and ident.get("value"):
                return Identifier(ident["system"], ident["value"])
    for ref in references(bundle):
        match = _DR_CONDITIONAL.match(ref)
        if match:
            system, _, value = unquote(match["token"]).partition("|")
            if system and value:
                return Identifier(system, value)
    return None


def references(node: object) -> list[str]:
    """Every Reference.reference string in a resource tree."""
    out: list[str] = []

    def walk(item: object) -> None:
        if isinstance(item, dict):
            ref = item.get("reference")
            if isinstance(ref, str):
                out.append(ref)
            for child in item.values():
                walk(child)
        elif isinstance(item, list):
            for child in item:
                walk(child)

    walk(node)
    return out
