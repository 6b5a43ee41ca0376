"""(Report, LabelSet) -> FHIR R4 transaction Bundle as a plain dict. A pure function: no clock, no randomness, so
the same input always gives the same JSON and a replay overwrites instead of duplicating.

Machine assertion (docs/HL7_FHIR.md "Marking machine labels"): every label Observation carries meta.security AIAST
(HL7 AI Transparency on FHIR), status "preliminary" (unverified by a clinician, whatever the report's own status),
a second category "machine-label", Observation.device -> the labeler Device (deterministic id per labeler name,
version and model), and the evidence the labeler read in Observation.note. Provenance.recorded is the labeling time
the caller passes (the Kafka record timestamp in `run`, MSH-7 in `convert`), never the wall clock.

A bundle is the complete set of one report version's findings (docs/HL7_FHIR.md "The record is the complete set of
a version's findings"): only the findings the version asserts (positive, negative, uncertain) become Observations,
each PUT with its fixed id per report (UUIDv5 of facility|accession|observation), so a replay overwrites. What the
bundle does not contain is no longer asserted. Retiring an earlier version's findings needs the server's state, so
it happens where that state is (`radlabel sink`); every Observation and the Provenance carry what that needs: the
report's accession identifier, a label identifier per report and observation, and the version facts (result
status, result time, message time) in the report-version extension. Earlier designs PUT all 14 observations, blanks
as entered-in-error placeholders, so that the server held exactly the latest labels without connector state; that
left ten junk resources per report on the server (issue 17), and is gone.

Output profiles (connector/fhir/identifiers.py): ``standalone`` writes Patient and DiagnosticReport itself;
``enrich`` references the hospital's own by identifier (conditional references), or conditionally creates minimal
placeholders when the site asks.
"""

from __future__ import annotations

import base64
from datetime import datetime
from functools import lru_cache
from urllib.parse import quote

import orjson

from mappings.labels import LabelSet
from mappings.terminology import LOCAL_SYSTEM, PRESENCE_QUALIFIER, SNOMED_SYSTEM, finding_codes
from mappings.vocabulary import OBSERVATIONS, Certainty

from connector.fhir.identifiers import (
    ACCESSION_SYSTEM_PREFIX,
    AUTHORITY_SYSTEM_PREFIX,
    STANDALONE,
    OutputProfile,
    ResolvedIdentifiers,
    resolve_identifiers,
    search_value,
)
from connector.hl7.models import Report, mint_id

LOINC_SYSTEM = "http://loinc.org"
CPT_SYSTEM = "http://www.ama-assn.org/go/cpt"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LABELER_SYSTEM = "urn:radlabel:labeler"
PROCEDURE_SYSTEM_PREFIX = "urn:radlabel:procedure-code:"
# Observation.identifier[0]: one per report and observation ("<report id>:<local code>"), so a consumer can name a
# label without our ids; identifier[1] is the report's accession identifier (the sink's search key).
LABEL_IDENTIFIER_SYSTEM = "urn:radlabel:label"
# The version facts a consumer orders versions by (docs/HL7_FHIR.md): status P|F|C|X, result time, message time.
REPORT_VERSION_EXTENSION = "urn:radlabel:extension:report-version"
# meta.tag on the placeholders enrich may conditionally create, so a site can find and merge them.
PLACEHOLDER_TAG = {"system": "urn:radlabel:codesystem:tag", "code": "placeholder",
                   "display": "Minimal placeholder created by radlabel; the site's own feed owns this record"}

__all__ = ["ACCESSION_SYSTEM_PREFIX", "AUTHORITY_SYSTEM_PREFIX", "OutputProfile", "build_bundle",
           "build_bundle_shared", "bundle_bytes", "bundle_id", "labeling_time"]

# HL7 v2 coding systems (table 0396 and the names feeds use) with a standard FHIR system URI; others stay local.
_CODE_SYSTEMS = {
    "LN": LOINC_SYSTEM, "LOINC": LOINC_SYSTEM,
    "C4": CPT_SYSTEM, "C5": CPT_SYSTEM, "CPT": CPT_SYSTEM, "CPT4": CPT_SYSTEM, "CPT-4": CPT_SYSTEM,
    "SCT": SNOMED_SYSTEM, "SNOMEDCT": SNOMED_SYSTEM,
}
_FHIR_STATUS = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled"}
# A machine label is never a clinician-verified result: "preliminary" ("data may be incomplete or unverified")
# whatever the report's own status (which DiagnosticReport.status carries). A cancelled report has no labels.
_LABEL_STATUS = "preliminary"
_ACSN_TYPE = {"coding": [{"system": V2_0203, "code": "ACSN"}]}
_IMAGING_CATEGORY = {"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}
RADLABEL_CATEGORY_SYSTEM = "urn:radlabel:codesystem:observation-category"
_MACHINE_CATEGORY = {
    "coding": [
        {
            "system": RADLABEL_CATEGORY_SYSTEM,
            "code": "machine-label",
            "display": "Machine-asserted label, not verified by a clinician",
        }
    ]
}
_CATEGORIES = [_IMAGING_CATEGORY, _MACHINE_CATEGORY]
_RAD_CATEGORY = [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}]
# HL7 AI Transparency on FHIR: "Artificial Intelligence asserted" security label, and the AI Device vocabulary.
V3_OBSERVATION_VALUE = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
_AI_META = {"security": [{"system": V3_OBSERVATION_VALUE, "code": "AIAST", "display": "Artificial Intelligence asserted"}]}
AI_DEVICE_TYPE_SYSTEM = "http://hl7.org/fhir/uv/aitransparency/CodeSystem/AIdeviceTypeCS"
AI_KIND_EXTENSION = "http://hl7.org/fhir/uv/aitransparency/StructureDefinition/aitransparency.AIKind"
_AI_KIND = {  # labeler name -> AIdeviceTypeCS code
    "rules": ("Rule-Based-Systems", "Rule-Based Systems"),
    "llm": ("Large-Language-Models", "Large Language Models"),
}
# Evidence notes are for a reviewer, not a copy of the report: each quoted span is cut at this many characters.
_EVIDENCE_MAX = 300
_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "N": "other", "U": "unknown"}
# Used when OBR-4 carries no code: LOINC "Diagnostic imaging study".
_DEFAULT_REPORT_CODE = {"system": LOINC_SYSTEM, "code": "18748-4", "display": "Diagnostic imaging study"}
# Provenance.recorded is required; a report without any timestamp gets a fixed, obviously-synthetic instant
# rather than the wall clock, which would break byte-identical output.
_NO_TIME = "1970-01-01T00:00:00+00:00"


def bundle_id(report: Report) -> str:
    return report.bundle_id


def build_bundle(report: Report, labels: LabelSet, *, recorded: datetime | None = None,
                 profile: OutputProfile = STANDALONE) -> dict:
    """The transaction Bundle for one report version (unvalidated; see connector.fhir.validate). A dict of its own:
    the caller may change it. ``recorded``: when the labeling happened (see :func:`labeling_time`). Raises
    :class:`connector.fhir.identifiers.Unpublishable` (no patient identifier; an authority a strict site lacks)."""
    return orjson.loads(orjson.dumps(build_bundle_shared(report, labels, recorded=recorded, profile=profile)))


def labeling_time(report: Report, recorded: datetime | None) -> str:
    """Provenance.recorded: the caller's stable labeling time, else the message time (MSH-7), else the report's own
    times, else a fixed, obviously synthetic instant; never the wall clock (it would break byte-identical replays)."""
    when = recorded or report.message_time or report.report_time or report.observation_time
    return when.isoformat() if when else _NO_TIME


def report_version_extension(report: Report) -> dict:
    """The version facts of this report version: OBR-25 status, OBR-22 result time, MSH-7 message time."""
    facts: list[dict] = [{"url": "status", "valueCode": report.status}]
    if report.report_time:
        facts.append({"url": "resultTime", "valueDateTime": report.report_time.isoformat()})
    if report.message_time:
        facts.append({"url": "messageTime", "valueDateTime": report.message_time.isoformat()})
    return {"url": REPORT_VERSION_EXTENSION, "extension": facts}


def build_bundle_shared(report: Report, labels: LabelSet, *, recorded: datetime | None = None,
                        profile: OutputProfile = STANDALONE, ids: ResolvedIdentifiers | None = None) -> dict:
    """:func:`build_bundle` without the copy: constant parts (codes, categories, the labeler method) are objects
    shared with other bundles, and parts repeat inside the bundle. For validating and serialising right away;
    never mutate it. ``ids``: the report's identifiers already resolved under ``profile``."""
    ids = ids or resolve_identifiers(report, profile)
    report_id = report.diagnostic_report_id
    patient_id = mint_id("Patient", "|".join(ids.primary))
    acc_system, accession = ids.accession
    accession_identifier = {"type": _ACSN_TYPE, "system": acc_system, "value": accession}
    effective = report.observation_time.isoformat() if report.observation_time else None
    issued = report.report_time.isoformat() if report.report_time else None
    version = [report_version_extension(report)]

    entries: list[dict] = []
    if profile.kind == "standalone":
        patient_ref = {"reference": f"Patient/{patient_id}"}
        report_ref = {"reference": f"DiagnosticReport/{report_id}"}
    elif profile.placeholders:
        # Conditional create: the server creates these only when no resource has the identifier, and resolves the
        # fullUrl to the existing one otherwise, so references to the fullUrl point at the hospital's own record.
        patient_ref = {"reference": f"urn:uuid:{patient_id}"}
        report_ref = {"reference": f"urn:uuid:{report_id}"}
        patient_search = search_value(*ids.primary)
        entries.append(_post_if_none(patient_id, {
            "resourceType": "Patient", "meta": {"tag": [PLACEHOLDER_TAG]},
            "identifier": [{"system": ids.primary[0], "value": ids.primary[1]}],
        }, f"identifier={patient_search}"))
        placeholder = _diagnostic_report(report, patient_ref, effective, [], accession_identifier, full=False)
        del placeholder["id"]
        placeholder["meta"] = {"tag": [PLACEHOLDER_TAG]}
        entries.append(_post_if_none(report_id, placeholder, f"identifier={search_value(acc_system, accession)}"))
    else:
        patient_ref = {"reference": f"Patient?identifier={search_value(*ids.primary)}"}
        report_ref = {"reference": f"DiagnosticReport?identifier={search_value(acc_system, accession)}"}

    device = _device(labels.labeler.name, labels.labeler.version, labels.labeler.model)
    device_ref = {"reference": f"Device/{device['id']}"}
    if profile.kind == "standalone":
        entries.append(_put(_patient(report, patient_id, ids)))
    entries.append(_put(device))
    # A cancelled report carries no findings.
    present = {} if report.status == "X" else labels.labels
    observation_entries: list[dict] = []
    results: list[dict] = []
    quotes: dict[tuple[int, int], str] = {}  # evidence sentences are shared by findings: quote each once
    names = [name for name in OBSERVATIONS if name in present]
    for name, obs_id in zip(names, report.observation_ids(tuple(names))):
        results.append({"reference": f"Observation/{obs_id}"})
        observation = _observation(report, labels, name, obs_id, present[name], patient_ref, report_ref, effective,
                                   issued, device_ref, quotes,
                                   [_label_identifier(report_id, name), accession_identifier], version)
        observation_entries.append(_put(observation))
    if profile.kind == "standalone":
        entries.append(_put(_diagnostic_report(report, patient_ref, effective, results, accession_identifier)))
    entries.extend(observation_entries)
    entries.append(_put(_provenance(report, labels, report_ref, results, device_ref, labeling_time(report, recorded),
                                    version, accession_identifier)))

    bundle: dict = {"resourceType": "Bundle", "id": report.bundle_id, "type": "transaction"}
    if report.report_time:
        bundle["timestamp"] = report.report_time.isoformat()
    bundle["entry"] = entries
    return bundle


# Byte-identical to json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode() for the str / list
# / dict / bool / None values bundles hold (tests check); the passthrough options make orjson refuse datetimes,
# dataclasses and subclasses as json does, instead of converting them its own way.
_JSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_DATETIME
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
)


def bundle_bytes(bundle: dict) -> bytes:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8. Same bundle -> same bytes."""
    return orjson.dumps(bundle, option=_JSON_OPTIONS)


def _put(resource: dict) -> dict:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def _post_if_none(resource_id: str, resource: dict, condition: str) -> dict:
    return {
        "fullUrl": f"urn:uuid:{resource_id}",
        "resource": resource,
        "request": {"method": "POST", "url": resource["resourceType"], "ifNoneExist": condition},
    }


def _label_identifier(report_id: str, name: str) -> dict:
    return {"system": LABEL_IDENTIFIER_SYSTEM, "value": f"{report_id}:{_local_code(name)}"}


@lru_cache(maxsize=None)
def _local_code(name: str) -> str:
    return finding_codes()[name].local_code


def _patient(report: Report, patient_id: str, ids: ResolvedIdentifiers) -> dict:
    patient = report.patient
    resource: dict = {"resourceType": "Patient", "id": patient_id}
    identifiers = []
    for system, value, type_code, assigner in ids.patient:
        entry: dict = {}
        if type_code:
            entry["type"] = {"coding": [{"system": V2_0203, "code": type_code}]}
        entry["system"] = system
        entry["value"] = value
        if assigner:
            entry["assigner"] = {"display": assigner}
        identifiers.append(entry)
    resource["identifier"] = identifiers
    if patient.family or patient.given:
        name: dict = {}
        if patient.family:
            name["family"] = patient.family
        if patient.given:
            name["given"] = list(patient.given)
        resource["name"] = [name]
    if patient.sex and patient.sex in _GENDER:
        resource["gender"] = _GENDER[patient.sex]
    if patient.birth_date:
        resource["birthDate"] = patient.birth_date.isoformat()
    return resource


def _report_code(report: Report) -> dict:
    if not report.procedure_code:
        concept: dict = {"coding": [dict(_DEFAULT_REPORT_CODE)]}
        if report.procedure_display:
            concept["text"] = report.procedure_display
        return concept
    system = _CODE_SYSTEMS.get((report.procedure_system or "").strip().upper()) or (
        PROCEDURE_SYSTEM_PREFIX + quote(report.procedure_system or report.sending_facility or "local", safe="")
    )
    coding: dict = {"system": system, "code": report.procedure_code}
    if report.procedure_display:
        coding["display"] = report.procedure_display
    concept = {"coding": [coding]}
    if report.procedure_display:
        concept["text"] = report.procedure_display
    return concept


def _diagnostic_report(report: Report, patient_ref: dict, effective: str | None, results: list[dict],
                       accession_identifier: dict, *, full: bool = True) -> dict:
    """The report (standalone), or with ``full=False`` the minimal placeholder enrich may conditionally create:
    identifier, status, category, code, subject, times; no results, conclusion or text."""
    resource: dict = {
        "resourceType": "DiagnosticReport",
        "id": report.diagnostic_report_id,
        "identifier": [accession_identifier],
        "status": _FHIR_STATUS[report.status],
        "category": _RAD_CATEGORY,
        "code": _report_code(report),
        "subject": patient_ref,
    }
    if effective:
        resource["effectiveDateTime"] = effective
    if report.report_time:
        resource["issued"] = report.report_time.isoformat()
    if not full:
        return resource
    if results:
        resource["result"] = results
    impression = report.sections.get("impression")
    if impression:
        resource["conclusion"] = impression
    if report.text:
        resource["presentedForm"] = [
            {
                "contentType": "text/plain; charset=utf-8",
                "data": base64.b64encode(report.text.encode("utf-8")).decode("ascii"),
                "title": "Report text",
            }
        ]
    return resource


def _labeler_method(labels: LabelSet) -> dict:
    info = labels.labeler
    return _method(info.name, info.version, info.model, labels.fallback)


@lru_cache(maxsize=256)
def _method(name: str, version: str, model: str | None, fallback: bool) -> dict:
    text = f"radlabel {name} labeler {version}"
    if model:
        text += f" (model {model})"
    if fallback:
        text += " [fallback]"
    return {"coding": [{"system": LABELER_SYSTEM, "code": name, "display": text}], "text": text}


@lru_cache(maxsize=None)
def _observation_code(name: str) -> dict:
    finding = finding_codes()[name]
    codings = []
    if finding.snomed_code:
        codings.append({"system": SNOMED_SYSTEM, "code": finding.snomed_code, "display": finding.snomed_display})
    codings.append({"system": LOCAL_SYSTEM, "code": finding.local_code, "display": name})
    return {"coding": codings, "text": name}


def _observation(
    report: Report,
    labels: LabelSet,
    name: str,
    obs_id: str,
    certainty: Certainty,
    patient_ref: dict,
    report_ref: dict,
    effective: str | None,
    issued: str | None,
    device_ref: dict,
    quotes: dict[tuple[int, int], str],
    identifiers: list[dict],
    version: list[dict],
) -> dict:
    resource: dict = {
        "resourceType": "Observation",
        "id": obs_id,
        "meta": _AI_META,
        "extension": version,
        "identifier": identifiers,
        "status": _LABEL_STATUS,
        "category": _CATEGORIES,
        "code": _observation_code(name),
        "subject": patient_ref,
    }
    if effective:
        resource["effectiveDateTime"] = effective
    if issued:
        resource["issued"] = issued
    resource["valueCodeableConcept"] = _value(certainty)
    note = _evidence_note(report.text, labels.evidence.get(name), quotes)
    if note:
        resource["note"] = note
    resource["method"] = _labeler_method(labels)
    resource["device"] = device_ref
    resource["derivedFrom"] = [report_ref]
    return resource


def _evidence_note(text: str, spans: list | None, quotes: dict[tuple[int, int], str]) -> list[dict] | None:
    """The sentences the labeler read for this finding (rule evidence spans into the report text, which
    DiagnosticReport.presentedForm carries), quoted, so a reviewer sees why it was asserted."""
    if not spans:
        return None
    quoted: list[str] = []
    for span in spans:
        key = (span.start, span.end)
        piece = quotes.get(key)
        if piece is None:
            piece = " ".join(text[span.start : span.end].split())
            if len(piece) > _EVIDENCE_MAX:
                piece = piece[: _EVIDENCE_MAX - 1] + "\u2026"
            quotes[key] = piece
        if piece and piece not in quoted:
            quoted.append(piece)
    if not quoted:
        return None
    return [{"text": "Evidence: " + " | ".join(f'"{piece}"' for piece in quoted)}]


@lru_cache(maxsize=64)
def _device(name: str, version: str, model: str | None) -> dict:
    """The labeler as a Device (fields of the AI Transparency IG's AI-Device profile, which is not claimed in
    meta.profile: servers that know the profile would then demand its full conformance). Same labeler -> same id."""
    kind_code, kind_display = _AI_KIND.get(name, ("Artificial-Intelligence", "All kinds of Artificial Intelligence"))
    label = f"radlabel {name} labeler"
    device: dict = {
        "resourceType": "Device",
        "id": mint_id("Device", name, version, model or ""),
        "extension": [
            {
                "url": AI_KIND_EXTENSION,
                "valueCodeableConcept": {
                    "coding": [{"system": AI_DEVICE_TYPE_SYSTEM, "code": kind_code, "display": kind_display}]
                },
            }
        ],
        "identifier": [{"system": LABELER_SYSTEM, "value": f"{name}@{version}" + (f"#{model}" if model else "")}],
        "status": "active",
        "manufacturer": "radlabel",
        "deviceName": [{"name": label, "type": "user-friendly-name"}],
        "modelNumber": model or name,
        "type": {
            "coding": [
                {
                    "system": AI_DEVICE_TYPE_SYSTEM,
                    "code": "Artificial-Intelligence",
                    "display": "All kinds of Artificial Intelligence",
                }
            ]
        },
        "version": [{"value": version}],
    }
    if model:
        device["deviceName"].append({"name": model, "type": "model-name"})
    return device


@lru_cache(maxsize=None)
def _value(certainty: Certainty) -> dict:
    qualifier_code, qualifier_display = PRESENCE_QUALIFIER[certainty]
    return {
        "coding": [{"system": SNOMED_SYSTEM, "code": qualifier_code, "display": qualifier_display}],
        "text": certainty.value,
    }


def _provenance(report: Report, labels: LabelSet, report_ref: dict, results: list[dict], device_ref: dict,
                recorded: str, version: list[dict], accession_identifier: dict) -> dict:
    """The labeling activity. Its source entity names the report by reference and by accession identifier, so a
    consumer finds the report's earlier labels from the Provenance alone (a cancelled version has no Observation,
    and an enrich bundle no DiagnosticReport)."""
    return {
        "resourceType": "Provenance",
        "id": report.provenance_id,
        "extension": version,
        "target": [report_ref, *results],
        "recorded": recorded,
        "activity": {
            "coding": [
                {
                    "system": "http://terminology.hl7.org/CodeSystem/v3-DataOperation",
                    "code": "DERIVE",
                    "display": "derive",
                }
            ]
        },
        "agent": [
            {
                "type": {
                    "coding": [
                        {
                            "system": "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
                            "code": "author",
                            "display": "Author",
                        }
                    ]
                },
                "who": {**device_ref, "display": _labeler_method(labels)["text"]},
            }
        ],
        "entity": [{"role": "source", "what": {**report_ref, "identifier": accession_identifier}}],
    }
