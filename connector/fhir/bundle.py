"""(Report, LabelSet) -> FHIR R4 transaction Bundle as a plain dict. A pure function: no clock, no randomness, so
the same input always gives the same JSON and a replay overwrites instead of duplicating.

Retiring findings (docs/HL7_FHIR.md): every one of the 14 observations has a fixed id per report
(UUIDv5 of facility|accession|observation) and every bundle PUTs all 14. A labeled observation carries its
presence qualifier and the report's status; a blank one is PUT with status "entered-in-error" and no value.
After any version of a report is applied, the server therefore holds exactly that version's labels as the
Observations that are not entered-in-error (and DiagnosticReport.result lists exactly those), whatever came
before, with no state in the connector. DELETE was rejected: deleting a resource that never existed is a 404
that aborts the whole transaction on Medplum, and conditional DELETE forces its serialisable path, limited to
8 entries per transaction.
"""

from __future__ import annotations

import base64
import json
from urllib.parse import quote

from mappings.labels import LabelSet
from mappings.terminology import LOCAL_SYSTEM, PRESENCE_QUALIFIER, SNOMED_SYSTEM, finding_codes
from mappings.vocabulary import OBSERVATIONS, Certainty

from connector.hl7.models import Report

LOINC_SYSTEM = "http://loinc.org"
V2_0203 = "http://terminology.hl7.org/CodeSystem/v2-0203"
V2_0074 = "http://terminology.hl7.org/CodeSystem/v2-0074"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
LABELER_SYSTEM = "urn:radlabel:labeler"
ACCESSION_SYSTEM_PREFIX = "urn:radlabel:accession:"
AUTHORITY_SYSTEM_PREFIX = "urn:radlabel:assigning-authority:"
PROCEDURE_SYSTEM_PREFIX = "urn:radlabel:procedure-code:"

_FHIR_STATUS = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled"}
_IMAGING_CATEGORY = {"coding": [{"system": OBSERVATION_CATEGORY, "code": "imaging", "display": "Imaging"}]}
_GENDER = {"M": "male", "F": "female", "O": "other", "A": "other", "N": "other", "U": "unknown"}
# Used when OBR-4 carries no code: LOINC "Diagnostic imaging study".
_DEFAULT_REPORT_CODE = {"system": LOINC_SYSTEM, "code": "18748-4", "display": "Diagnostic imaging study"}
# Provenance.recorded is required; a report without any timestamp gets a fixed, obviously-synthetic instant
# rather than the wall clock, which would break byte-identical output.
_NO_TIME = "1970-01-01T00:00:00+00:00"


def bundle_id(report: Report) -> str:
    return report.bundle_id


def build_bundle(report: Report, labels: LabelSet) -> dict:
    """The transaction Bundle for one report version (unvalidated; see connector.fhir.validate)."""
    patient_ref = {"reference": f"Patient/{report.patient_id}"}
    report_ref = {"reference": f"DiagnosticReport/{report.diagnostic_report_id}"}
    effective = report.observation_time.isoformat() if report.observation_time else None
    # A cancelled report carries no findings: all of them are retired.
    present = {} if report.status == "X" else labels.labels

    entries: list[dict] = [_put(_patient(report))]
    observation_entries: list[dict] = []
    results: list[dict] = []
    for name in OBSERVATIONS:
        obs_id = report.observation_id(name)
        certainty = present.get(name)
        if certainty is None:
            observation_entries.append(_put(_retired_observation(report, labels, name, obs_id, patient_ref, report_ref)))
            continue
        results.append({"reference": f"Observation/{obs_id}"})
        observation_entries.append(
            _put(_observation(report, labels, name, obs_id, certainty, patient_ref, report_ref, effective))
        )
    entries.append(_put(_diagnostic_report(report, patient_ref, effective, results)))
    entries.extend(observation_entries)
    entries.append(_put(_provenance(report, labels, report_ref, results)))

    bundle: dict = {"resourceType": "Bundle", "id": report.bundle_id, "type": "transaction"}
    if report.report_time:
        bundle["timestamp"] = report.report_time.isoformat()
    bundle["entry"] = entries
    return bundle


def bundle_bytes(bundle: dict) -> bytes:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8. Same bundle -> same bytes."""
    return json.dumps(bundle, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _put(resource: dict) -> dict:
    return {
        "fullUrl": f"urn:uuid:{resource['id']}",
        "resource": resource,
        "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"},
    }


def _patient(report: Report) -> dict:
    patient = report.patient
    resource: dict = {"resourceType": "Patient", "id": report.patient_id}
    identifiers = []
    for ident in patient.identifiers:
        entry: dict = {}
        if ident.type_code:
            entry["type"] = {"coding": [{"system": V2_0203, "code": ident.type_code}]}
        if ident.authority_oid:
            entry["system"] = f"urn:oid:{ident.authority_oid}"
        elif ident.authority:
            entry["system"] = AUTHORITY_SYSTEM_PREFIX + quote(ident.authority, safe="")
        entry["value"] = ident.value
        if ident.authority:
            entry["assigner"] = {"display": ident.authority}
        identifiers.append(entry)
    if identifiers:
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
    system = (
        LOINC_SYSTEM
        if (report.procedure_system or "").upper() in ("LN", "LOINC")
        else PROCEDURE_SYSTEM_PREFIX + quote(report.procedure_system or report.sending_facility or "local", safe="")
    )
    coding: dict = {"system": system, "code": report.procedure_code}
    if report.procedure_display:
        coding["display"] = report.procedure_display
    concept = {"coding": [coding]}
    if report.procedure_display:
        concept["text"] = report.procedure_display
    return concept


def _diagnostic_report(report: Report, patient_ref: dict, effective: str | None, results: list[dict]) -> dict:
    resource: dict = {
        "resourceType": "DiagnosticReport",
        "id": report.diagnostic_report_id,
        "identifier": [
            {
                "type": {"coding": [{"system": V2_0203, "code": "ACSN"}]},
                "system": ACCESSION_SYSTEM_PREFIX + quote(report.sending_facility or "local", safe=""),
                "value": report.accession,
            }
        ],
        "status": _FHIR_STATUS[report.status],
        "category": [{"coding": [{"system": V2_0074, "code": "RAD", "display": "Radiology"}]}],
        "code": _report_code(report),
        "subject": dict(patient_ref),
    }
    if effective:
        resource["effectiveDateTime"] = effective
    if report.report_time:
        resource["issued"] = report.report_time.isoformat()
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
    text = f"radlabel {info.name} labeler {info.version}"
    if info.model:
        text += f" (model {info.model})"
    if labels.fallback:
        text += " [fallback]"
    return {"coding": [{"system": LABELER_SYSTEM, "code": info.name, "display": text}], "text": text}


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
) -> dict:
    qualifier_code, qualifier_display = PRESENCE_QUALIFIER[certainty]
    resource: dict = {
        "resourceType": "Observation",
        "id": obs_id,
        "status": _FHIR_STATUS[report.status],
        "category": [dict(_IMAGING_CATEGORY)],
        "code": _observation_code(name),
        "subject": dict(patient_ref),
    }
    if effective:
        resource["effectiveDateTime"] = effective
    if report.report_time:
        resource["issued"] = report.report_time.isoformat()
    resource["valueCodeableConcept"] = {
        "coding": [{"system": SNOMED_SYSTEM, "code": qualifier_code, "display": qualifier_display}],
        "text": certainty.value,
    }
    resource["method"] = _labeler_method(labels)
    resource["derivedFrom"] = [dict(report_ref)]
    return resource


def _retired_observation(
    report: Report, labels: LabelSet, name: str, obs_id: str, patient_ref: dict, report_ref: dict
) -> dict:
    """A finding this version of the report does not mention: withdrawn, so a finding an earlier version
    asserted does not survive a correction."""
    return {
        "resourceType": "Observation",
        "id": obs_id,
        "status": "entered-in-error",
        "category": [dict(_IMAGING_CATEGORY)],
        "code": _observation_code(name),
        "subject": dict(patient_ref),
        "method": _labeler_method(labels),
        "derivedFrom": [dict(report_ref)],
    }


def _provenance(report: Report, labels: LabelSet, report_ref: dict, results: list[dict]) -> dict:
    info = labels.labeler
    recorded = (report.report_time or report.observation_time)
    return {
        "resourceType": "Provenance",
        "id": report.provenance_id,
        "target": [dict(report_ref)] + [dict(r) for r in results],
        "recorded": recorded.isoformat() if recorded else _NO_TIME,
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
                            "code": "assembler",
                            "display": "Assembler",
                        }
                    ]
                },
                "who": {"display": _labeler_method(labels)["text"]},
            }
        ],
        "entity": [{"role": "source", "what": dict(report_ref)}],
    }
