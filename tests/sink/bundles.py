"""Output records in the shape of the bundle contract (/work/helpers/CONTRACT.md, docs/FHIR_SINK.md "Input"),
built here so the sink's tests state exactly the versions and findings they need.

Findings: {"Pneumothorax": "+", "Pleural Effusion": "-", "Edema": "?"}. The PHI in them (names, MRN, accession)
comes from connector.stream.synthetic's style and is checked to stay out of logs.
"""

from __future__ import annotations

import uuid

import orjson

NS = uuid.UUID("6ba7b811-9dad-11d1-80b4-00c04fd430c8")
MRN_SYSTEM = "urn:oid:2.16.840.1.113883.3.999.1"
ACC_SYSTEM = "urn:oid:2.16.840.1.113883.3.999.2"
FACILITY = "SINKHOSP"
SNOMED = "http://snomed.info/sct"
_VALUE = {"+": ("52101004", "Present"), "-": ("2667000", "Absent"), "?": ("82334004", "Indeterminate")}
_CODES = {"Pneumothorax": "36118008", "Pleural Effusion": "60046008", "Edema": "40541001", "Cardiomegaly": "8186001"}
PATIENT = ("Quixote", "Dulcinea", "MRN7733001")  # family, given, MRN: PHI markers for the log checks


def ids(accession: str) -> dict[str, str]:
    base = f"{FACILITY}|{accession}"
    return {"report": str(uuid.uuid5(NS, base)), "patient": str(uuid.uuid5(NS, base + "|patient")),
            "provenance": str(uuid.uuid5(NS, base + "|provenance")), "device": str(uuid.uuid5(NS, "device"))}


def observation_id(accession: str, name: str) -> str:
    return str(uuid.uuid5(NS, f"{FACILITY}|{accession}|{name}"))


def _version_ext(status: str, result_time: str | None, message_time: str | None) -> dict:
    parts = [{"url": "status", "valueCode": status}]
    if result_time:
        parts.append({"url": "resultTime", "valueDateTime": result_time})
    if message_time:
        parts.append({"url": "messageTime", "valueDateTime": message_time})
    return {"url": "urn:radlabel:extension:report-version", "extension": parts}


def _put(resource: dict) -> dict:
    return {"fullUrl": f"urn:uuid:{resource['id']}", "resource": resource,
            "request": {"method": "PUT", "url": f"{resource['resourceType']}/{resource['id']}"}}


def bundle(accession: str, status: str, findings: dict[str, str], *, result_time: str | None = None,
           message_time: str | None = None, profile: str = "standalone", mrn: str = PATIENT[2]) -> dict:
    i = ids(accession)
    ext = _version_ext(status, result_time, message_time)
    acc_ident = {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "ACSN"}]},
                 "system": ACC_SYSTEM, "value": accession}
    if profile == "standalone":
        subject = {"reference": f"Patient/{i['patient']}"}
        report_ref = {"reference": f"DiagnosticReport/{i['report']}"}
    else:
        subject = {"reference": f"Patient?identifier={MRN_SYSTEM}|{mrn}"}
        report_ref = {"reference": f"DiagnosticReport?identifier={ACC_SYSTEM}|{accession}"}
    device = {"resourceType": "Device", "id": i["device"], "deviceName": [{"name": "radlabel rules", "type": "model-name"}]}
    entries = []
    if profile == "standalone":
        entries.append(_put({"resourceType": "Patient", "id": i["patient"],
                             "identifier": [{"system": MRN_SYSTEM, "value": mrn}],
                             "name": [{"family": PATIENT[0], "given": [PATIENT[1]]}]}))
    entries.append(_put(device))
    observations = []
    for name, certainty in ([] if status == "X" else findings.items()):
        code, display = _VALUE[certainty]
        observations.append({
            "resourceType": "Observation", "id": observation_id(accession, name),
            "identifier": [{"system": "urn:radlabel:label", "value": f"{i['report']}:{name.lower().replace(' ', '-')}"},
                           acc_ident],
            "extension": [ext],
            "status": "preliminary",
            "category": [{"coding": [{"system": "urn:radlabel:codesystem:observation-category",
                                      "code": "machine-label"}]}],
            "code": {"coding": [{"system": SNOMED, "code": _CODES[name]}], "text": name},
            "subject": subject, "derivedFrom": [report_ref],
            "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": code, "display": display}]},
            "device": {"reference": f"Device/{i['device']}"},
            **({"issued": result_time} if result_time else {}),
        })
    if profile == "standalone":
        dr_status = {"P": "preliminary", "F": "final", "C": "corrected", "X": "cancelled"}[status]
        entries.append(_put({"resourceType": "DiagnosticReport", "id": i["report"], "status": dr_status,
                             "identifier": [acc_ident], "code": {"text": "XR CHEST 2 VIEWS"}, "subject": subject,
                             "result": [{"reference": f"Observation/{o['id']}"} for o in observations]}))
    entries.extend(_put(o) for o in observations)
    entries.append(_put({"resourceType": "Provenance", "id": i["provenance"], "extension": [ext],
                         "target": [report_ref, *({"reference": f"Observation/{o['id']}"} for o in observations)],
                         "entity": [{"role": "source", "what": {**report_ref, "identifier": acc_ident}}],
                         "recorded": message_time or "1970-01-01T00:00:00+00:00",
                         "agent": [{"who": {"reference": f"Device/{i['device']}"}}]}))
    return {"resourceType": "Bundle", "id": str(uuid.uuid5(NS, f"{accession}|{status}|{result_time}")),
            "type": "transaction", "entry": entries}


def record(accession: str, status: str, findings: dict[str, str], **kw) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """(key, value, headers) of the output record, as `radlabel run` writes it."""
    b = bundle(accession, status, findings, **kw)
    headers = [("report-id", ids(accession)["report"].encode()), ("report-status", status.encode()),
               ("report-time", (kw.get("result_time") or "").encode()),
               ("message-time", (kw.get("message_time") or "").encode()),
               ("fhir-profile", kw.get("profile", "standalone").encode())]
    value = orjson.dumps(b, option=orjson.OPT_SORT_KEYS)
    return f"{FACILITY}|{accession}".encode(), value, headers
