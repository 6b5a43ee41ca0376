from __future__ import annotations

import base64
import json
import os

import pytest

from mappings.labels import LabelerInfo, LabelSet
from mappings.terminology import LOCAL_SYSTEM, SNOMED_SYSTEM
from mappings.vocabulary import OBSERVATIONS

from connector.fhir.validate import InvalidResource, validate_bundle
from connector.pipeline import build_bundle, build_validated_bundle, bundle_bytes, parse_reports, split_messages

from tests.hl7_fhir.conftest import GOLDEN, N, P, U, fixture_bytes

INFO = LabelerInfo(name="rules", version="1.0.0")

# (fixture, labels) pairs with golden bundles. Labels are fixed here: the mapping is a pure function of both.
GOLDEN_CASES = {
    "v23_tx_mllp": {"Lung Opacity": P, "Pneumonia": P, "Pleural Effusion": N, "Cardiomegaly": N},
    "v251_ft_escapes_crlf_bom": {"No Finding": P, "Pneumothorax": N},
    "corrected_2_corrected": {"Atelectasis": P, "Pleural Effusion": N},
}


def report_of(name: str, index: int = 0):
    return parse_reports(split_messages(fixture_bytes(name + ".hl7" if "." not in name else name))[0])[index]


def entries_by_type(bundle: dict, resource_type: str) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_golden_bundles(name):
    bundle = json.loads(build_validated_bundle(report_of(name), LabelSet(labels=GOLDEN_CASES[name], labeler=INFO)))
    path = GOLDEN / f"{name}.json"
    if os.environ.get("RADLABEL_UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(bundle, indent=2, sort_keys=True, ensure_ascii=False) + "\n", encoding="utf-8")
    assert bundle == json.loads(path.read_text(encoding="utf-8"))


def test_same_message_gives_byte_identical_bundles_across_framings():
    raw = fixture_bytes("v23_tx_mllp.hl7")
    labels = LabelSet(labels=GOLDEN_CASES["v23_tx_mllp"], labeler=INFO)
    outputs = {
        build_validated_bundle(parse_reports(variant)[0], labels)
        for variant in (raw, raw[1:-2], raw[1:-2].replace(b"\r", b"\n"), b"\xef\xbb\xbf" + raw[1:-2])
    }
    assert len(outputs) == 1
    assert bundle_bytes(json.loads(outputs.pop())) == build_validated_bundle(report_of("v23_tx_mllp"), labels)


def test_bundle_shape_and_codes():
    report = report_of("v23_tx_mllp")
    labels = LabelSet(labels={"Pneumonia": P, "Pleural Effusion": N, "Lung Lesion": U}, labeler=INFO)
    bundle = build_bundle(report, labels)
    validate_bundle(bundle)
    assert bundle["type"] == "transaction"
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])
    # only the three asserted findings become Observations (no entered-in-error placeholders, issue 17)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == (
        ["Patient", "Device", "DiagnosticReport"] + ["Observation"] * 3 + ["Provenance"]
    )
    for entry in bundle["entry"]:
        resource = entry["resource"]
        assert entry["request"]["url"] == f"{resource['resourceType']}/{resource['id']}"

    (dr,) = [e["resource"] for e in entries_by_type(bundle, "DiagnosticReport")]
    assert dr["status"] == "final"
    assert dr["conclusion"] == "Right lower lobe pneumonia."
    assert base64.b64decode(dr["presentedForm"][0]["data"]).decode() == report.text
    assert dr["identifier"][0]["value"] == "ACC20001"
    (patient,) = [e["resource"] for e in entries_by_type(bundle, "Patient")]
    assert dr["subject"]["reference"] == f"Patient/{patient['id']}"

    observations = {e["resource"]["code"]["text"]: e["resource"] for e in entries_by_type(bundle, "Observation")}
    assert list(observations) == [name for name in OBSERVATIONS if name in labels.labels]
    live = observations
    assert set(live) == {"Pneumonia", "Pleural Effusion", "Lung Lesion"}
    assert sorted(r["reference"] for r in dr["result"]) == sorted(f"Observation/{o['id']}" for o in live.values())
    qualifier = {name: obs["valueCodeableConcept"]["coding"][0]["code"] for name, obs in live.items()}
    assert qualifier == {"Pneumonia": "52101004", "Pleural Effusion": "2667000", "Lung Lesion": "82334004"}
    pneumonia = live["Pneumonia"]["code"]["coding"]
    assert {(c["system"], c["code"]) for c in pneumonia} == {(SNOMED_SYSTEM, "233604007"), (LOCAL_SYSTEM, "pneumonia")}
    # no SNOMED concept for Lung Lesion: the local CheXpert code carries it alone
    assert [c["system"] for c in live["Lung Lesion"]["code"]["coding"]] == [LOCAL_SYSTEM]
    (device,) = [e["resource"] for e in entries_by_type(bundle, "Device")]
    for obs in live.values():
        # machine labels never look like a radiologist's final result, whatever the report status
        assert dr["status"] == "final" and obs["status"] == "preliminary"
        assert obs["derivedFrom"] == [{"reference": f"DiagnosticReport/{dr['id']}"}]
        assert obs["method"]["text"] == "radlabel rules labeler 1.0.0"
        assert [c["coding"][0]["code"] for c in obs["category"]] == ["imaging", "machine-label"]
        assert obs["device"] == {"reference": f"Device/{device['id']}"}
    version = {"url": "urn:radlabel:extension:report-version", "extension": [
        {"url": "status", "valueCode": "F"},
        {"url": "resultTime", "valueDateTime": report.report_time.isoformat()},
        {"url": "messageTime", "valueDateTime": report.message_time.isoformat()}]}
    for name, obs in observations.items():
        assert obs["meta"]["security"] == [{"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue",
                                            "code": "AIAST", "display": "Artificial Intelligence asserted"}]
        # what a consumer retires by: a label identifier per report and observation, the accession identifier
        # exactly as the DiagnosticReport carries it, and the version facts
        local = next(c["code"] for c in obs["code"]["coding"] if c["system"] == LOCAL_SYSTEM)
        assert obs["identifier"] == [{"system": "urn:radlabel:label", "value": f"{dr['id']}:{local}"},
                                     dr["identifier"][0]]
        assert obs["extension"] == [version]
        assert obs["issued"] == report.report_time.isoformat()

    (prov,) = [e["resource"] for e in entries_by_type(bundle, "Provenance")]
    assert "1.0.0" in prov["agent"][0]["who"]["display"]
    assert prov["agent"][0]["who"]["reference"] == f"Device/{device['id']}"
    assert prov["agent"][0]["type"]["coding"][0]["code"] == "author"
    assert {t["reference"] for t in prov["target"]} == {f"DiagnosticReport/{dr['id']}"} | {
        f"Observation/{o['id']}" for o in live.values()
    }
    assert prov["extension"] == [version]


def test_fallback_and_model_are_named_in_the_method():
    labels = LabelSet(
        labels={"Edema": P}, labeler=LabelerInfo(name="llm", version="2", model="smollm2-ft"), fallback=True
    )
    bundle = build_bundle(report_of("v23_tx_mllp"), labels)
    (edema,) = [e["resource"] for e in entries_by_type(bundle, "Observation") if e["resource"]["code"]["text"] == "Edema"]
    assert edema["method"]["text"] == "radlabel llm labeler 2 (model smollm2-ft) [fallback]"


def test_cancelled_report_carries_no_findings():
    """A cancelled version asserts nothing: no Observation at all (the record is the complete set of its findings,
    so a consumer retires every earlier one); the Provenance still carries the version facts (status X)."""
    report = report_of("corrected_3_cancelled")
    bundle = build_bundle(report, LabelSet(labels={"Pleural Effusion": P}, labeler=INFO))
    validate_bundle(bundle)
    (dr,) = [e["resource"] for e in entries_by_type(bundle, "DiagnosticReport")]
    assert dr["status"] == "cancelled"
    assert "result" not in dr and "presentedForm" not in dr
    assert entries_by_type(bundle, "Observation") == []
    (prov,) = [e["resource"] for e in entries_by_type(bundle, "Provenance")]
    assert prov["extension"][0]["extension"][0] == {"url": "status", "valueCode": "X"}
    assert prov["target"] == [{"reference": f"DiagnosticReport/{dr['id']}"}]


def test_status_maps_onto_report_and_observations_stay_preliminary():
    """The report's status goes to DiagnosticReport; a label Observation is "preliminary" (unverified) for every
    report status, so no consumer reads a machine label as a radiologist's final coded result."""
    for name, expected in (("corrected_1_prelim", "preliminary"), ("corrected_2_corrected", "corrected"),
                           ("v23_tx_mllp", "final")):
        bundle = build_bundle(report_of(name), LabelSet(labels={"Atelectasis": P}, labeler=INFO))
        (dr,) = [e["resource"] for e in entries_by_type(bundle, "DiagnosticReport")]
        assert dr["status"] == expected
        assert [e["resource"]["status"] for e in entries_by_type(bundle, "Observation")] == ["preliminary"]


def test_labeler_device_is_deterministic_and_names_model_version():
    rules = LabelSet(labels={"Edema": P}, labeler=INFO)
    llm = LabelSet(labels={"Edema": P}, labeler=LabelerInfo(name="llm", version="smollm2-135m-ft-3", model="m-7f3a"))
    devices = {}
    for key, labels in (("rules", rules), ("llm", llm)):
        bundles = [build_bundle(report_of(n), labels) for n in ("v23_tx_mllp", "corrected_1_prelim")]
        (first,), (second,) = (entries_by_type(b, "Device") for b in bundles)
        assert first == second  # one Device per labeler, PUT idempotently by every bundle
        devices[key] = first["resource"]
    assert devices["rules"]["id"] != devices["llm"]["id"]
    assert devices["llm"]["version"] == [{"value": "smollm2-135m-ft-3"}]
    assert {"name": "m-7f3a", "type": "model-name"} in devices["llm"]["deviceName"]
    kinds = {k: d["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] for k, d in devices.items()}
    assert kinds == {"rules": "Rule-Based-Systems", "llm": "Large-Language-Models"}
    assert devices["rules"]["type"]["coding"][0]["code"] == "Artificial-Intelligence"


def test_provenance_recorded_is_the_labeling_time_given_else_the_message_time():
    from datetime import datetime, timezone

    report = report_of("v23_tx_mllp")
    labels = LabelSet(labels={"Edema": P}, labeler=INFO)
    (prov,) = entries_by_type(build_bundle(report, labels), "Provenance")
    assert prov["resource"]["recorded"] == report.message_time.isoformat() == "2023-01-02T08:15:00+00:00"
    when = datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone.utc)
    (prov,) = entries_by_type(build_bundle(report, labels, recorded=when), "Provenance")
    assert prov["resource"]["recorded"] == "2024-05-06T07:08:09+00:00"
    assert build_bundle(report, labels, recorded=when) == build_bundle(report, labels, recorded=when)


def test_rule_evidence_is_quoted_in_the_observation_note():
    import asyncio

    from connector.rules.labeler import RuleLabeler

    report = report_of("v23_tx_mllp")
    (labels,) = asyncio.run(RuleLabeler().label_batch([report.text]))
    bundle = build_bundle(report, labels)
    validate_bundle(bundle)
    observations = {e["resource"]["code"]["text"]: e["resource"] for e in entries_by_type(bundle, "Observation")}
    assert labels.labels["Pneumonia"].value == "positive"
    note = observations["Pneumonia"]["note"][0]["text"]
    assert note.startswith("Evidence: ") and "pneumonia" in note.lower()
    for span in labels.evidence["Pneumonia"]:
        assert " ".join(report.text[span.start:span.end].split()) in note
    # a finding without evidence (e.g. an LLM label) carries no note
    bare = build_bundle(report, LabelSet(labels={"Edema": P}, labeler=INFO))
    assert all("note" not in e["resource"] for e in entries_by_type(bare, "Observation"))


def test_validation_catches_an_invalid_resource():
    bundle = build_bundle(report_of("v23_tx_mllp"), LabelSet(labels={"Edema": P}, labeler=INFO))
    # fhir.resources checks structure, cardinality and primitive formats (not value-set membership)
    entries_by_type(bundle, "Observation")[0]["resource"]["effectiveDateTime"] = "yesterday"
    with pytest.raises(InvalidResource) as info:
        validate_bundle(bundle)
    assert "Observation" in str(info.value)
    bundle = build_bundle(report_of("v23_tx_mllp"), LabelSet(labels={"Edema": P}, labeler=INFO))
    entries_by_type(bundle, "Patient")[0]["resource"]["birthDate"] = "01/02/1960"
    with pytest.raises(InvalidResource):
        validate_bundle(bundle)
    bundle = build_bundle(report_of("v23_tx_mllp"), LabelSet(labels={"Edema": P}, labeler=INFO))
    bundle["entry"][0]["request"]["method"] = "PUTT"
    with pytest.raises(InvalidResource):
        validate_bundle(bundle)
    bundle = build_bundle(report_of("v23_tx_mllp"), LabelSet(labels={"Edema": P}, labeler=INFO))
    entries_by_type(bundle, "DiagnosticReport")[0]["resource"].pop("code")  # required element
    with pytest.raises(InvalidResource):
        validate_bundle(bundle)


def test_validation_error_does_not_quote_values():
    bundle = build_bundle(report_of("v23_tx_mllp"), LabelSet(labels={}, labeler=INFO))
    entries_by_type(bundle, "Patient")[0]["resource"]["birthDate"] = "PEMBERTON-1960"
    with pytest.raises(InvalidResource) as info:
        validate_bundle(bundle)
    assert "PEMBERTON" not in str(info.value)


def test_fast_and_full_validation_agree_on_every_sample_and_fixture():
    from connector.fhir.identifiers import OutputProfile
    from connector.fhir.validate import BundleValidator
    from tests.hl7_fhir.conftest import FIXTURES, SAMPLES

    profiles = [OutputProfile(), OutputProfile(kind="enrich"), OutputProfile(kind="enrich", placeholders=True)]
    fast = BundleValidator()
    labels = [
        LabelSet(labels={}, labeler=INFO),
        LabelSet(labels={"No Finding": P}, labeler=INFO),
        LabelSet(labels={name: (U if i % 2 else N) for i, name in enumerate(OBSERVATIONS) if name != "No Finding"}, labeler=INFO),
    ]
    checked = 0
    for path in sorted(SAMPLES.glob("*.hl7")) + sorted(FIXTURES.glob("*.hl7")):
        for raw in split_messages(path.read_bytes()):
            try:
                reports = parse_reports(raw)
            except Exception:
                continue
            for report in reports:
                for label_set in labels:
                    for profile in profiles:
                        bundle = build_bundle(report, label_set, profile=profile)
                        validate_bundle(bundle, full=True)
                        fast.validate(bundle)
                        fast.validate(bundle)  # the second pass hits the shape cache
                        checked += 1
                        # a broken generated element is still caught once shapes are cached
                        broken = json.loads(bundle_bytes(bundle))
                        entries_by_type(broken, "Provenance")[0]["resource"]["extension"][0]["extension"][-1][
                            "valueDateTime"] = "2024-13-45T99:00:00Z"
                        with pytest.raises(InvalidResource):
                            fast.validate(broken)
                        observations = entries_by_type(broken, "Observation")
                        if observations:
                            broken = json.loads(bundle_bytes(bundle))
                            entries_by_type(broken, "Observation")[-1]["resource"]["identifier"][1]["value"] = ""
                            with pytest.raises(InvalidResource):
                                fast.validate(broken)
    assert checked >= 180
