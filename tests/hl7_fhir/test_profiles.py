"""Output profiles (standalone | enrich) and identifier systems (issue 12), and the bundle as the complete set of a
report version's findings (issue 17): pure functions, no server. The real-engine side is in test_medplum.py."""

from __future__ import annotations

import json

import pytest

from mappings.labels import LabelerInfo, LabelSet
from mappings.terminology import LOCAL_SYSTEM

from connector.fhir.bundle import CPT_SYSTEM, LOINC_SYSTEM, build_bundle
from connector.fhir.identifiers import (
    NO_PATIENT_IDENTIFIER,
    UNKNOWN_AUTHORITY,
    OutputProfile,
    SystemRule,
    Unpublishable,
    resolve_identifiers,
    search_value,
)
from connector.fhir.validate import validate_bundle
from connector.pipeline import Converted, convert_reports, parse_reports, split_messages, version_headers

from tests.hl7_fhir.conftest import N, P, U

INFO = LabelerInfo(name="rules", version="1.0.0")
OID = "2.16.840.1.113883.3.9999"
SITE_MRN = "https://demohosp.example/fhir/sid/mrn"
SITE_ACC = "https://demohosp.example/fhir/sid/accession"
ENRICH = OutputProfile(kind="enrich")


def message(pid3: str = "MRN200002^^^FIXHOSP^MR", *, msh4: str = "FIXHOSP", obr3: str = "ACC20002",
            procedure: str = "IMG1^XR CHEST PA LAT^UNKDEV", status: str = "F") -> bytes:
    """The v2.4 fixture with the fields these tests vary."""
    return (
        f"MSH|^~\\&|FIXRIS|{msh4}|RADLABEL|FIXHOSP|20230203101010||ORU^R01|FIX0002|P|2.4\r"
        f"PID|1||{pid3}||HALVORSEN^BJORN||19751212|M\r"
        f"OBR||PL20002^SYS|{obr3}|{procedure}|||20230203093000|||||||||||||||20230203101000|||{status}\r"
        "OBX|1|TX|4711||FINDINGS:~Mild cardiomegaly.~~IMPRESSION:~Mild cardiomegaly.||||||F\r"
    ).encode()


def report(**fields: str):
    (only,) = parse_reports(message(**fields))
    return only


def by_type(bundle: dict, kind: str) -> list[dict]:
    return [e for e in bundle["entry"] if e["resource"]["resourceType"] == kind]


LABELS = LabelSet(labels={"Cardiomegaly": P, "Pleural Effusion": N, "Edema": U}, labeler=INFO)


# --- identifier systems -------------------------------------------------------------------------------------------

def test_same_authority_with_or_without_its_universal_id_is_one_system():
    forms = ["MRN1^^^DEMOHOSP^MR", f"MRN1^^^DEMOHOSP&{OID}&ISO^MR", f"MRN1^^^&{OID}&ISO^MR"]
    mapped = OutputProfile(patient_systems=(SystemRule(SITE_MRN, namespace="DEMOHOSP", universal_id=OID,
                                                       universal_id_type="ISO"),))
    assert {resolve_identifiers(report(pid3=f), mapped).primary for f in forms} == {(SITE_MRN, "MRN1")}
    # one Patient, whichever form the feed sent (issue 12: two forms used to make two patients)
    ids = {by_type(build_bundle(report(pid3=f), LABELS, profile=mapped), "Patient")[0]["resource"]["id"]
           for f in forms}
    assert len(ids) == 1
    # unmapped, the namespace id decides the fallback system, so the first two forms still agree
    unmapped = {resolve_identifiers(report(pid3=f)).primary for f in forms[:2]}
    assert unmapped == {("urn:radlabel:assigning-authority:DEMOHOSP", "MRN1")}
    # an OID alone falls back to urn:oid:
    assert resolve_identifiers(report(pid3=forms[2])).primary == (f"urn:oid:{OID}", "MRN1")


def test_a_universal_id_of_another_type_does_not_match():
    rule = SystemRule(SITE_MRN, universal_id=OID, universal_id_type="ISO")
    profile = OutputProfile(patient_systems=(rule,))
    assert resolve_identifiers(report(pid3=f"MRN1^^^&{OID}&DNS^MR"), profile).fallbacks == ("patient", "accession")
    assert resolve_identifiers(report(pid3=f"MRN1^^^&{OID}&ISO^MR"), profile).fallbacks == ("accession",)


def test_rule_order_is_preference_among_pid3_repetitions():
    pid3 = "ABC451175^^^ABC^MR~EPIC1234567^^^EPIC^MRN"
    rules = (SystemRule("https://x.example/epic", namespace="EPIC"), SystemRule("https://x.example/abc", namespace="ABC"))
    resolved = resolve_identifiers(report(pid3=pid3), OutputProfile(patient_systems=rules))
    assert resolved.primary == ("https://x.example/epic", "EPIC1234567")
    assert [p[:2] for p in resolved.patient] == [("https://x.example/abc", "ABC451175"),
                                                   ("https://x.example/epic", "EPIC1234567")]
    # unmapped: the first repetition, counted as a fallback
    assert resolve_identifiers(report(pid3=pid3)).primary == ("urn:radlabel:assigning-authority:ABC", "ABC451175")


def test_identifier_without_authority_is_assigned_by_the_sending_facility():
    rule = SystemRule(SITE_MRN, namespace="DEMOHOSP", universal_id=OID)
    resolved = resolve_identifiers(report(pid3="MRN9^^^^MR", msh4=f"DEMOHOSP^{OID}^ISO"),
                                   OutputProfile(patient_systems=(rule,)))
    assert resolved.primary == (SITE_MRN, "MRN9")
    assert resolved.patient[0][3] == "DEMOHOSP"  # the assigner displayed
    assert resolve_identifiers(report(pid3="MRN9")).primary == ("urn:radlabel:assigning-authority:FIXHOSP", "MRN9")


def test_accession_system_from_the_order_number_authority_then_the_facility():
    by_ris = OutputProfile(accession_systems=(SystemRule(SITE_ACC, namespace="RIS"),))
    assert resolve_identifiers(report(obr3="ACC7^RIS"), by_ris).accession == (SITE_ACC, "ACC7")
    by_facility = OutputProfile(accession_systems=(SystemRule(SITE_ACC, universal_id=OID),))
    assert resolve_identifiers(report(msh4=f"DEMOHOSP^{OID}^ISO"), by_facility).accession == (SITE_ACC, "ACC20002")
    # unmapped: today's facility-qualified URN, counted
    fallback = resolve_identifiers(report(obr3="ACC7^RIS"))
    assert fallback.accession == ("urn:radlabel:accession:FIXHOSP", "ACC7") and "accession" in fallback.fallbacks


@pytest.mark.parametrize("pid3", ["", "^^^FIXHOSP^MR", "   ^^^FIXHOSP"])
@pytest.mark.parametrize("profile", [OutputProfile(), ENRICH], ids=["standalone", "enrich"])
def test_no_usable_patient_identifier_is_unpublishable(pid3, profile):
    """Never an identifier-less patient (one per accession, as the first version of the connector made)."""
    with pytest.raises(Unpublishable) as info:
        build_bundle(report(pid3=pid3), LABELS, profile=profile)
    assert info.value.reason == NO_PATIENT_IDENTIFIER
    assert "MRN" not in info.value.detail


def test_strict_site_dead_letters_unknown_authorities():
    strict = OutputProfile(kind="enrich", unknown_authority="dead-letter",
                           patient_systems=(SystemRule(SITE_MRN, namespace="DEMOHOSP"),),
                           accession_systems=(SystemRule(SITE_ACC, namespace="FIXHOSP"),))
    with pytest.raises(Unpublishable) as info:
        resolve_identifiers(report(pid3="MRN1^^^OTHERHOSP^MR"), strict)
    assert info.value.reason == UNKNOWN_AUTHORITY and "OTHERHOSP" not in info.value.detail
    # a known MRN beside an unknown one: the unknown one is left off the record
    resolved = resolve_identifiers(report(pid3="X1^^^OTHER^MR~MRN1^^^DEMOHOSP^MR"), strict)
    assert resolved.patient == ((SITE_MRN, "MRN1", "MR", "DEMOHOSP"),) and resolved.fallbacks == ()
    # the accession must be mapped too
    with pytest.raises(Unpublishable):
        resolve_identifiers(report(pid3="MRN1^^^DEMOHOSP^MR", msh4="ELSEWHERE"), strict)


def test_search_values_escape_fhir_search_characters():
    assert search_value("urn:oid:1.2.3", "MRN1") == "urn:oid:1.2.3|MRN1"
    assert search_value("https://h.example/mrn", "A|B,C$D\\E F&G") == \
        "https://h.example/mrn|A%5C%7CB%5C%2CC%5C%24D%5C%5CE%20F%26G"


# --- bundles ------------------------------------------------------------------------------------------------------

def test_first_version_creates_no_retired_resources():
    for profile in (OutputProfile(), ENRICH, OutputProfile(kind="enrich", placeholders=True)):
        bundle = build_bundle(report(status="P"), LABELS, profile=profile)
        validate_bundle(bundle, full=True)
        text = json.dumps(bundle)
        assert "entered-in-error" not in text
        observations = [e["resource"] for e in by_type(bundle, "Observation")]
        assert sorted(o["code"]["text"] for o in observations) == ["Cardiomegaly", "Edema", "Pleural Effusion"]
        assert all("valueCodeableConcept" in o for o in observations)


def test_enrich_references_the_hospitals_patient_and_report_and_writes_only_derived_resources():
    site = OutputProfile(kind="enrich", patient_systems=(SystemRule(SITE_MRN, namespace="FIXHOSP"),),
                         accession_systems=(SystemRule(SITE_ACC, namespace="FIXHOSP"),))
    bundle = build_bundle(report(), LABELS, profile=site)
    validate_bundle(bundle, full=True)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == \
        ["Device"] + ["Observation"] * 3 + ["Provenance"]
    assert all(e["request"]["method"] == "PUT" for e in bundle["entry"])
    patient_ref = f"Patient?identifier={SITE_MRN}|MRN200002"
    report_ref = f"DiagnosticReport?identifier={SITE_ACC}|ACC20002"
    for entry in by_type(bundle, "Observation"):
        obs = entry["resource"]
        assert obs["subject"] == {"reference": patient_ref}
        assert obs["derivedFrom"] == [{"reference": report_ref}]
        assert obs["identifier"][1]["system"] == SITE_ACC and obs["identifier"][1]["value"] == "ACC20002"
    (prov,) = [e["resource"] for e in by_type(bundle, "Provenance")]
    assert prov["target"][0] == {"reference": report_ref}
    # the report by reference and by accession identifier: what a consumer retires by, even with no Observation
    assert prov["entity"][0]["what"] == {"reference": report_ref,
                                         "identifier": by_type(bundle, "Observation")[0]["resource"]["identifier"][1]}
    # no PHI beyond the identifiers the references need: no name, birth date or report text
    text = json.dumps(bundle)
    assert "HALVORSEN" not in text and "1975" not in text and "presentedForm" not in text


def test_enrich_placeholders_are_conditional_creates_referenced_by_full_url():
    bundle = build_bundle(report(), LABELS, profile=OutputProfile(kind="enrich", placeholders=True))
    validate_bundle(bundle, full=True)
    patient, dr = bundle["entry"][:2]
    assert patient["request"] == {"method": "POST", "url": "Patient",
                                  "ifNoneExist": "identifier=urn:radlabel:assigning-authority:FIXHOSP|MRN200002"}
    assert patient["resource"]["identifier"] == [{"system": "urn:radlabel:assigning-authority:FIXHOSP",
                                                  "value": "MRN200002"}]
    assert "name" not in patient["resource"] and "id" not in patient["resource"]
    assert dr["request"] == {"method": "POST", "url": "DiagnosticReport",
                             "ifNoneExist": "identifier=urn:radlabel:accession:FIXHOSP|ACC20002"}
    assert {"result", "presentedForm", "conclusion", "id"}.isdisjoint(dr["resource"])
    assert dr["resource"]["subject"] == {"reference": patient["fullUrl"]}
    for placeholder in (patient, dr):
        assert placeholder["resource"]["meta"]["tag"][0]["code"] == "placeholder"
    for entry in by_type(bundle, "Observation"):
        assert entry["resource"]["subject"] == {"reference": patient["fullUrl"]}
        assert entry["resource"]["derivedFrom"] == [{"reference": dr["fullUrl"]}]


def test_standard_code_systems_for_procedure_codes():
    systems = {}
    for name in ("C4", "CPT", "LN", "UNKDEV"):
        (dr,) = by_type(build_bundle(report(procedure=f"71046^XR CHEST 2V^{name}"), LABELS), "DiagnosticReport")
        systems[name] = dr["resource"]["code"]["coding"][0]["system"]
    assert systems == {"C4": CPT_SYSTEM, "CPT": CPT_SYSTEM, "LN": LOINC_SYSTEM,
                       "UNKDEV": "urn:radlabel:procedure-code:UNKDEV"}
    assert CPT_SYSTEM == "http://www.ama-assn.org/go/cpt" and LOINC_SYSTEM == "http://loinc.org"


def test_label_identifier_is_stable_across_versions_and_unique_per_observation():
    prelim = build_bundle(report(status="P"), LABELS)
    final = build_bundle(report(status="F"), LabelSet(labels={"Cardiomegaly": P}, labeler=INFO))

    def idents(bundle):
        return {e["resource"]["code"]["text"]: (e["resource"]["id"], e["resource"]["identifier"][0]["value"])
                for e in by_type(bundle, "Observation")}

    assert idents(final)["Cardiomegaly"] == idents(prelim)["Cardiomegaly"]
    assert len({v for _, v in idents(prelim).values()}) == 3
    local = next(c["code"] for e in by_type(final, "Observation") for c in e["resource"]["code"]["coding"]
                 if c["system"] == LOCAL_SYSTEM)
    assert idents(final)["Cardiomegaly"][1] == f"{report().diagnostic_report_id}:{local}"


def test_version_facts_in_headers_match_the_bundle():
    (converted,) = convert_reports([report(status="C")], [LABELS], profile=ENRICH)
    assert isinstance(converted, Converted)
    headers = dict(version_headers(converted))
    r = report(status="C")
    assert headers == {"report-id": r.diagnostic_report_id.encode(), "report-status": b"C",
                       "report-time": b"2023-02-03T10:10:00+00:00", "message-time": b"2023-02-03T10:10:10+00:00",
                       "fhir-profile": b"enrich"}
    assert all(value.isascii() for value in headers.values())
    bundle = json.loads(converted.bundle)
    (prov,) = [e["resource"] for e in by_type(bundle, "Provenance")]
    facts = {f["url"]: f.get("valueCode") or f.get("valueDateTime") for f in prov["extension"][0]["extension"]}
    assert facts == {"status": "C", "resultTime": "2023-02-03T10:10:00+00:00",
                     "messageTime": "2023-02-03T10:10:10+00:00"}
    assert converted.identifier_fallbacks == ("patient", "accession")


def test_stream_output_records_carry_the_version_headers_and_dead_letter_unpublishable_reports():
    from connector.settings import FhirSettings
    from connector.stream.process import InputRecord, build_outputs

    record = InputRecord("hl7.oru.radiology", 0, 7, b"k", message())
    outcome = build_outputs(record, parse_reports(message()), [LABELS], FhirSettings().output_profile("enrich"))
    (out,) = outcome.outputs
    headers = dict(out.headers)
    assert headers["fhir-profile"] == b"enrich" and headers["report-status"] == b"F"
    assert headers["report-id"] == report().diagnostic_report_id.encode()
    assert outcome.identifier_fallbacks == ["patient", "accession"]
    # an empty PID-3: the whole record is a dead letter with the reason, its bytes kept
    bare = InputRecord("hl7.oru.radiology", 0, 8, b"k", message(pid3=""))
    outcome = build_outputs(bare, parse_reports(message(pid3="")), [LABELS], ENRICH)
    assert outcome.outputs == [] and outcome.dead_letter is not None
    assert outcome.dead_letter.reason == NO_PATIENT_IDENTIFIER and outcome.dead_letter.value == message(pid3="")


def test_split_messages_round_trip_for_the_builder():
    # the builder above makes a message the real parser reads (guards every test in this file)
    assert len(split_messages(message())) == 1 and report().accession == "ACC20002"
