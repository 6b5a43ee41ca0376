"""One published Bundle (+ the Kafka headers it travelled with) -> 14 audit rows, one per CheXpert observation.

Pure functions. The Bundle is the source of truth; headers add what only the record knows (Kafka coordinates,
replay window) and take precedence where both carry a value (labeler, status, times). Two Bundle shapes are read:

- every bundle PUTs all 14 Observations, the ones this version does not assert as ``entered-in-error``;
- only asserted findings are Observations, each with identifiers and a report-version extension (issue 17,
  enrich profile: Patient and DiagnosticReport are conditional references, not resources).

An observation without a live Observation (absent, or entered-in-error) is ``blank``: the labeler did not assert it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

from mappings.terminology import LOCAL_SYSTEM, PRESENCE_QUALIFIER, SNOMED_SYSTEM, finding_codes
from mappings.vocabulary import OBSERVATIONS

# Column order of the exported table (docs/AUDIT.md describes each).
COLUMNS: tuple[str, ...] = (
    "bundle_id", "report_id", "accession", "patient_hash", "report_status", "result_time", "procedure",
    "observation", "class", "snomed_code", "evidence", "labeler", "model_version", "model", "fallback",
    "source_topic", "source_partition", "source_offset", "source_timestamp", "replay_of",
)
INT_COLUMNS = ("source_partition", "source_offset", "source_timestamp")
CLASSES: tuple[str, ...] = ("blank", "negative", "uncertain", "positive")

REPORT_VERSION_EXTENSION = "urn:radlabel:extension:report-version"
_ACCESSION_PREFIX = "urn:radlabel:accession:"
_FHIR_TO_V2_STATUS = {"preliminary": "P", "final": "F", "corrected": "C", "amended": "C", "cancelled": "X"}
_QUALIFIER_CLASS = {code: certainty.value for certainty, (code, _) in PRESENCE_QUALIFIER.items()}
_EVIDENCE_PREFIX = "Evidence: "


class PatientHasher:
    """Salted, keyed hash of the patient identifier (HMAC-SHA256 of ``system|value``): rows of one patient can be
    grouped without the table holding the MRN, and without the salt nobody can test a guessed MRN against it."""

    def __init__(self, salt: str) -> None:
        if not salt:
            raise ValueError("the patient hash needs a non-empty salt")
        self._key = salt.encode("utf-8")

    @lru_cache(maxsize=65_536)  # noqa: B019 - one hasher per export; a patient has many reports
    def __call__(self, identifier: str | None) -> str:
        if not identifier:
            return ""
        return hmac.new(self._key, identifier.encode("utf-8"), hashlib.sha256).hexdigest()[:32]


@lru_cache(maxsize=1)
def _names_by_local_code() -> dict[str, str]:
    return {code.local_code: name for name, code in finding_codes().items()}


@lru_cache(maxsize=1)
def _snomed_by_name() -> dict[str, str]:
    return {name: code.snomed_code or "" for name, code in finding_codes().items()}


def _observation_name(resource: dict) -> str | None:
    code = resource.get("code") or {}
    local = _names_by_local_code()
    for coding in code.get("coding") or ():
        if coding.get("system") == LOCAL_SYSTEM and coding.get("code") in local:
            return local[coding["code"]]
    text = code.get("text")
    return text if text in OBSERVATIONS else None


def _class(resource: dict) -> str:
    """positive / negative / uncertain from the presence qualifier; blank when withdrawn or valueless."""
    if resource.get("status") == "entered-in-error":
        return "blank"
    value = resource.get("valueCodeableConcept") or {}
    for coding in value.get("coding") or ():
        if coding.get("system") == SNOMED_SYSTEM and coding.get("code") in _QUALIFIER_CLASS:
            return _QUALIFIER_CLASS[coding["code"]]
    text = value.get("text")
    return text if text in CLASSES[1:] else "blank"


def _snomed_of(resource: dict) -> str:
    for coding in (resource.get("code") or {}).get("coding") or ():
        if coding.get("system") == SNOMED_SYSTEM:
            return coding.get("code") or ""
    return ""


def _evidence(resource: dict) -> str:
    notes = [n.get("text", "") for n in resource.get("note") or ()]
    return " | ".join(n[len(_EVIDENCE_PREFIX):] if n.startswith(_EVIDENCE_PREFIX) else n for n in notes if n)


def _conditional(reference: str | None, resource_type: str) -> tuple[str, str] | None:
    """``Patient?identifier=system|value`` (the enrich profile's conditional reference) -> (system, value)."""
    prefix = f"{resource_type}?identifier="
    if not reference or not reference.startswith(prefix):
        return None
    system, sep, value = unquote(reference[len(prefix):]).partition("|")
    return (system, value) if sep else ("", system)


def _version_extension(resource: dict) -> dict[str, str]:
    for ext in resource.get("extension") or ():
        if ext.get("url") == REPORT_VERSION_EXTENSION:
            return {sub.get("url"): sub.get("valueCode") or sub.get("valueDateTime") or ""
                    for sub in ext.get("extension") or ()}
    return {}


def _procedure(report: dict) -> str:
    code = report.get("code") or {}
    if code.get("text"):
        return code["text"]
    for coding in code.get("coding") or ():
        return coding.get("display") or coding.get("code") or ""
    return ""


def _device_labeler(device: dict) -> tuple[str, str, str]:
    """(name, version, model) from the Device identifier ``name@version#model``."""
    for ident in device.get("identifier") or ():
        value = ident.get("value") or ""
        name, _, rest = value.partition("@")
        version, _, model = rest.partition("#")
        if name:
            return name, version, model
    return "", "", ""


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text not in (None, "") else None
    except ValueError:
        return None


def bundle_rows(bundle: dict, headers: Mapping[str, str], hasher: PatientHasher) -> list[dict[str, Any]]:
    """14 rows (OBSERVATIONS order) for one report version's Bundle. ``headers``: the Kafka record's (decoded),
    empty for a Bundle file; the source_* columns are the input record's coordinates the connector put there."""
    by_type: dict[str, list[dict]] = {}
    for entry in bundle.get("entry") or ():
        resource = entry.get("resource") or {}
        by_type.setdefault(resource.get("resourceType", ""), []).append(resource)
    report = (by_type.get("DiagnosticReport") or [{}])[0]
    patient = (by_type.get("Patient") or [{}])[0]
    device = (by_type.get("Device") or [{}])[0]
    provenance = (by_type.get("Provenance") or [{}])[0]
    live: dict[str, dict] = {}
    any_observation: dict = {}
    for resource in by_type.get("Observation") or ():
        any_observation = any_observation or resource
        name = _observation_name(resource)
        if name is not None and _class(resource) != "blank":
            live[name] = resource
    h = headers

    accession, accession_system = "", ""
    for ident in report.get("identifier") or ():
        accession, accession_system = ident.get("value") or "", ident.get("system") or ""
        break
    if not accession:
        for resource in [*live.values(), any_observation]:
            idents = resource.get("identifier") or ()
            if len(idents) > 1:
                accession, accession_system = idents[1].get("value") or "", idents[1].get("system") or ""
                break
    if not accession:
        refs = [r.get("reference") for r in any_observation.get("derivedFrom") or ()]
        refs += [r.get("reference") for r in provenance.get("target") or ()]
        for ref in refs:
            parsed = _conditional(ref, "DiagnosticReport")
            if parsed:
                accession_system, accession = parsed
                break

    report_id = h.get("report-id") or report.get("id") or ""
    if not report_id:
        for resource in live.values():
            idents = resource.get("identifier") or ()
            if idents and ":" in (idents[0].get("value") or ""):
                report_id = idents[0]["value"].rsplit(":", 1)[0]
                break
    if not report_id and accession and accession_system.startswith(_ACCESSION_PREFIX):
        from connector.hl7.models import mint_id  # the same UUIDv5 the bundle builder mints

        facility = unquote(accession_system[len(_ACCESSION_PREFIX):])
        report_id = mint_id("DiagnosticReport", f"{facility}|{accession}")

    patient_key = ""
    for ident in patient.get("identifier") or ():
        patient_key = f"{ident.get('system', '')}|{ident.get('value', '')}"
        break
    if not patient_key:
        parsed = _conditional((any_observation.get("subject") or {}).get("reference"), "Patient")
        if parsed:
            patient_key = "|".join(parsed)

    version = _version_extension(any_observation) or _version_extension(provenance)
    status = h.get("report-status") or version.get("status") or _FHIR_TO_V2_STATUS.get(report.get("status", ""), "")
    result_time = (h.get("report-time") or version.get("resultTime") or report.get("issued")
                   or any_observation.get("issued") or bundle.get("timestamp") or "")

    dev_name, dev_version, dev_model = _device_labeler(device)
    method_text = ((any_observation.get("method") or {}).get("text")) or ""
    fallback_header = h.get("fallback")
    fallback = fallback_header == "true" if fallback_header else method_text.endswith("[fallback]")
    common = {
        "bundle_id": bundle.get("id") or h.get("bundle-id") or "",
        "report_id": report_id,
        "accession": accession,
        "patient_hash": hasher(patient_key),
        "report_status": status,
        "result_time": result_time,
        "procedure": _procedure(report),
        "labeler": h.get("labeler") or dev_name,
        "model_version": h.get("labeler-version") or dev_version,
        "model": h.get("model") or dev_model,
        "fallback": fallback,
        "source_topic": h.get("source-topic") or "",
        "source_partition": _int(h.get("source-partition")),
        "source_offset": _int(h.get("source-offset")),
        "source_timestamp": _int(h.get("source-timestamp")),
        "replay_of": h.get("replay-of") or "",
    }
    snomed = _snomed_by_name()
    rows = []
    for name in OBSERVATIONS:
        resource = live.get(name)
        rows.append({
            **common,
            "observation": name,
            "class": _class(resource) if resource else "blank",
            "snomed_code": (_snomed_of(resource) if resource else "") or snomed.get(name, ""),
            "evidence": _evidence(resource) if resource else "",
        })
    return rows
