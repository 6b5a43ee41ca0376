"""Bundles applied to a real FHIR engine: Medplum's FHIR router (npm @medplum/fhir-router) over its in-memory
repository, served by tests/fhir_server/server.mjs. `make install` runs `npm install` there.

The transaction bundles are POSTed directly with httpx. Retiring an earlier version's findings is the consumer's job
(docs/HL7_FHIR.md "The record is the complete set of a version's findings"); `apply_record` below is the smallest
consumer that follows that contract, to show the record carries what it needs. `radlabel sink` is the real one."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from connector.fhir.identifiers import OutputProfile, SystemRule
from connector.pipeline import Skipped, convert_message, parse_reports, split_messages

from tests.hl7_fhir.conftest import REPO, SAMPLES, N, P, TableLabeler, U, fixture_bytes

SERVER_DIR = REPO / "tests" / "fhir_server"


@pytest.fixture(scope="module")
def fhir() -> Iterator[httpx.Client]:
    node = shutil.which("node")
    if node is None or not (SERVER_DIR / "node_modules" / "@medplum" / "fhir-router").is_dir():
        pytest.skip("Medplum FHIR server not installed (needs node and `npm install` in tests/fhir_server)")
    process = subprocess.Popen(
        [node, "server.mjs", "0"], cwd=SERVER_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline()  # type: ignore[union-attr]
        if not line.startswith("listening "):
            raise RuntimeError(f"FHIR server did not start: {line!r} {process.stderr.read()}")  # type: ignore[union-attr]
        with httpx.Client(base_url=f"http://127.0.0.1:{int(line.split()[1])}", timeout=30) as client:
            yield client
    finally:
        process.terminate()
        process.wait(timeout=10)


def post(client: httpx.Client, bundle: bytes) -> dict:
    response = client.post("/", content=bundle, headers={"content-type": "application/fhir+json"})
    assert response.status_code == 200, response.text[:500]
    body = response.json()
    assert body["type"] == "transaction-response"
    assert all(e["response"]["status"] in ("200", "201") for e in body["entry"])
    return body


def convert(name: str, labeler, profile: OutputProfile = OutputProfile()) -> list:
    return asyncio.run(convert_message(split_messages(fixture_bytes(name))[0], labeler, profile=profile))


MACHINE_LABEL = "urn:radlabel:codesystem:observation-category|machine-label"


def apply_record(client: httpx.Client, record: bytes) -> dict:
    """A consumer following docs/HL7_FHIR.md: the record is the complete set of the version's findings, so our
    labels of the same accession that it does not carry are retired (entered-in-error) in the same transaction.
    (Version order is not checked here: the tests apply versions in order; `radlabel sink` checks it.)"""
    bundle = json.loads(record)
    (provenance,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
    accession = provenance["entity"][0]["what"]["identifier"]
    carried = {e["resource"]["id"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Observation"}
    found = client.get("/Observation", params={"identifier": f"{accession['system']}|{accession['value']}",
                                               "category": MACHINE_LABEL, "_count": "100"}).json()
    for entry in found.get("entry", []):
        stale = entry["resource"]
        if stale["id"] in carried or stale["status"] == "entered-in-error":
            continue
        stale = {k: v for k, v in stale.items() if k != "meta"} | {"meta": {"security": stale["meta"]["security"]}}
        stale["status"] = "entered-in-error"
        bundle["entry"].append({"fullUrl": f"urn:uuid:{stale['id']}", "resource": stale,
                                "request": {"method": "PUT", "url": f"Observation/{stale['id']}"}})
    return post(client, json.dumps(bundle).encode())


def retired_count(client: httpx.Client) -> int:
    return len(client.get("/Observation", params={"status": "entered-in-error", "_count": "1000"}).json()
               .get("entry", []))


def live_labels(client: httpx.Client, report_id: str) -> dict[str, str]:
    """The findings the server holds for a report: Observations derived from it that are not withdrawn."""
    bundle = client.get("/Observation", params={"derived-from": f"DiagnosticReport/{report_id}", "_count": "100"}).json()
    out = {}
    for entry in bundle.get("entry", []):
        obs = entry["resource"]
        if obs["status"] != "entered-in-error":
            out[obs["code"]["text"]] = obs["valueCodeableConcept"]["coding"][0]["code"]
    return out


def test_sample_bundles_apply(fhir):
    """Standalone bundles of every sample land; first versions create no retired resources at all (issue 17)."""
    from connector.rules.labeler import RuleLabeler

    labeler = RuleLabeler()
    applied = asserted = 0
    for path in sorted(SAMPLES.glob("*.hl7")):
        if "not-oru" in path.name:
            continue
        for raw in split_messages(path.read_bytes()):
            for item in asyncio.run(convert_message(raw, labeler)):
                if isinstance(item, Skipped):
                    assert "not-chest" in path.name and item.reason == "excluded:mr"
                    continue
                body = post(fhir, item.bundle)
                findings = len(item.labels.labels) if item.status != "X" else 0
                # Patient, the labeler Device, DiagnosticReport, one Observation per asserted finding, Provenance
                assert len(body["entry"]) == 4 + findings
                applied += 1
                asserted += findings
    assert applied == 8
    # the labeler is one Device on the server, referenced by every label and Provenance
    (device,) = [e["resource"] for e in fhir.get("/Device", params={"_count": "100"}).json()["entry"]]
    assert device["type"]["coding"][0]["code"] == "Artificial-Intelligence"
    assert device["version"] == [{"value": labeler.info.version}]
    tagged = fhir.get("/Observation", params={"_security": "AIAST", "_count": "1000"}).json()
    observations = fhir.get("/Observation", params={"_count": "1000"}).json()
    # only asserted findings, each once per report (the preliminary and corrected samples share their ids)
    assert len(tagged["entry"]) == len(observations["entry"]) <= asserted
    assert retired_count(fhir) == 0
    for entry in observations["entry"]:
        obs = entry["resource"]
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "AIAST",
                "display": "Artificial Intelligence asserted"} in obs["meta"]["security"]
        assert obs["device"]["reference"] == f"Device/{device['id']}"
        assert "valueCodeableConcept" in obs
    stored = fhir.get("/DiagnosticReport", params={"_count": "100"}).json()
    samples = [e for e in stored["entry"] if e["resource"]["identifier"][0]["system"].endswith(":DEMOHOSP")]
    assert len(samples) == 7  # the preliminary and corrected samples share one DiagnosticReport


def test_correction_leaves_exactly_the_new_labels(fhir):
    """Issue 17 on a real engine: P (Pneumothorax+, Effusion-) then C (Effusion-) leaves exactly Effusion- live and
    Pneumothorax retired, with the bundles carrying only asserted findings; the first version retires nothing;
    replaying changes nothing; a cancellation retires everything."""
    prelim_labels = {"Pneumothorax": P, "Pleural Effusion": N}
    corrected_labels = {"Pleural Effusion": N}
    labeler = TableLabeler(
        table={"Right pleural effusion.": prelim_labels, "Right lower lobe atelectasis.": corrected_labels}
    )
    (prelim,) = convert("corrected_1_prelim.hl7", labeler)
    (corrected,) = convert("corrected_2_corrected.hl7", labeler)
    before = retired_count(fhir)
    apply_record(fhir, prelim.bundle)
    report = parse_reports(split_messages(fixture_bytes("corrected_1_prelim.hl7"))[0])[0]
    dr_id = report.diagnostic_report_id
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004", "Pleural Effusion": "2667000"}
    assert retired_count(fhir) == before  # a first version creates no retired resource at all
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "preliminary"

    apply_record(fhir, corrected.bundle)
    assert live_labels(fhir, dr_id) == {"Pleural Effusion": "2667000"}
    # the query docs/HL7_FHIR.md tells consumers to use, answered by the server itself
    current = fhir.get(
        "/Observation",
        params={"derived-from": f"DiagnosticReport/{dr_id}", "status:not": "entered-in-error", "_count": "100"},
    ).json()
    assert [e["resource"]["code"]["text"] for e in current["entry"]] == ["Pleural Effusion"]
    dr = fhir.get(f"/DiagnosticReport/{dr_id}").json()
    assert dr["status"] == "corrected"
    assert [r["reference"] for r in dr["result"]] == [f"Observation/{report.observation_id('Pleural Effusion')}"]
    pneumothorax = fhir.get(f"/Observation/{report.observation_id('Pneumothorax')}").json()
    assert pneumothorax["status"] == "entered-in-error"
    # the history keeps what the preliminary report asserted
    history = fhir.get(f"/Observation/{report.observation_id('Pneumothorax')}/_history").json()
    assert {e["resource"]["status"] for e in history["entry"]} >= {"preliminary", "entered-in-error"}

    # replaying the same version changes nothing
    count = len(fhir.get("/Observation", params={"_count": "1000"}).json()["entry"])
    apply_record(fhir, corrected.bundle)
    assert live_labels(fhir, dr_id) == {"Pleural Effusion": "2667000"}
    assert len(fhir.get("/Observation", params={"_count": "1000"}).json()["entry"]) == count

    (cancelled,) = convert("corrected_3_cancelled.hl7", labeler)
    apply_record(fhir, cancelled.bundle)
    assert live_labels(fhir, dr_id) == {}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "cancelled"


def _versions_labeler() -> TableLabeler:
    return TableLabeler(table={  # first key found in the text wins: the final's own sentence first
        "Heart size is normal.": {"Pneumothorax": P, "Cardiomegaly": N},
        "Small right pneumothorax.": {"Pneumothorax": P},
        "No pneumothorax.": {"Pneumothorax": N},
    })


def test_version_rules_on_a_real_engine(fhir):
    """docs/HL7_FHIR.md "Version rules", one step each, applied in order to one accession:
    P -> F (the final replaces the preliminary's findings) -> C addendum-only (asserts nothing: publishes nothing,
    the final's findings stay) -> F "report pending" (asserts nothing, same) -> C with findings (replaces them)."""
    labeler = _versions_labeler()
    report = parse_reports(split_messages(fixture_bytes("versions_1_prelim.hl7"))[0])[0]
    dr_id = report.diagnostic_report_id

    (prelim,) = convert("versions_1_prelim.hl7", labeler)
    apply_record(fhir, prelim.bundle)
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "preliminary"

    (final,) = convert("versions_2_final.hl7", labeler)
    apply_record(fhir, final.bundle)
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004", "Cardiomegaly": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "final"

    (addendum,) = convert("versions_3_addendum_only.hl7", labeler)
    assert isinstance(addendum, Skipped) and addendum.reason == "non-diagnostic:communication"
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004", "Cardiomegaly": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "final"

    (pending,) = convert("versions_5_pending.hl7", labeler)
    assert isinstance(pending, Skipped) and pending.reason == "non-diagnostic:pending"

    (corrected,) = convert("versions_4_corrected.hl7", labeler)
    apply_record(fhir, corrected.bundle)
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "corrected"


SITE_MRN = "https://fixhosp.example/fhir/sid/mrn"
SITE_ACC = "https://fixhosp.example/fhir/sid/accession"
SITE = dict(patient_systems=(SystemRule(SITE_MRN, namespace="FIXHOSP"),),
            accession_systems=(SystemRule(SITE_ACC, namespace="FIXHOSP"),))


def _adt_patient(client: httpx.Client, mrn: str) -> dict:
    """The Patient as the hospital's ADT feed (its own HL7-to-FHIR conversion) writes it: server-assigned id."""
    response = client.post("/Patient", json={"resourceType": "Patient", "name": [{"family": "FROMADT"}],
                                              "identifier": [{"system": SITE_MRN, "value": mrn}]})
    assert response.status_code == 201, response.text[:300]
    return response.json()


def _patients(client: httpx.Client, mrn: str) -> list[dict]:
    found = client.get("/Patient", params={"identifier": f"{SITE_MRN}|{mrn}"}).json()
    return [e["resource"] for e in found.get("entry", [])]


def test_enrich_lands_on_the_patient_an_adt_feed_created(fhir):
    """enrich with placeholders: the bundle conditionally creates a minimal Patient / DiagnosticReport only when the
    server has none with the identifier. With the ADT feed's Patient present, no second Patient appears and every
    label points at the ADT's Patient; the missing report is created once (a placeholder), replay adds nothing."""
    labeler = TableLabeler(default={"Cardiomegaly": P, "Pleural Effusion": N})
    adt = _adt_patient(fhir, "MRN200002")
    (item,) = convert("v24_tx_tilde_lf.hl7", labeler, OutputProfile(kind="enrich", placeholders=True, **SITE))
    body = post(fhir, item.bundle)
    assert [e["response"]["status"] for e in body["entry"][:2]] == ["200", "201"]  # Patient matched, report created
    assert [p["id"] for p in _patients(fhir, "MRN200002")] == [adt["id"]]
    assert fhir.get(f"/Patient/{adt['id']}").json()["name"] == [{"family": "FROMADT"}]  # not overwritten
    (dr,) = [e["resource"] for e in fhir.get("/DiagnosticReport", params={"identifier": f"{SITE_ACC}|ACC20002"})
             .json()["entry"]]
    assert dr["subject"] == {"reference": f"Patient/{adt['id']}"}
    assert dr["meta"]["tag"][0]["code"] == "placeholder"
    labels = fhir.get("/Observation", params={"identifier": f"{SITE_ACC}|ACC20002", "category": MACHINE_LABEL}).json()
    assert sorted(e["resource"]["code"]["text"] for e in labels["entry"]) == ["Cardiomegaly", "Pleural Effusion"]
    for entry in labels["entry"]:
        assert entry["resource"]["subject"] == {"reference": f"Patient/{adt['id']}"}
        assert entry["resource"]["derivedFrom"] == [{"reference": f"DiagnosticReport/{dr['id']}"}]
    # replay: both placeholders match now, nothing new
    body = post(fhir, item.bundle)
    assert [e["response"]["status"] for e in body["entry"][:2]] == ["200", "200"]
    assert len(_patients(fhir, "MRN200002")) == 1
    assert len(fhir.get("/DiagnosticReport", params={"identifier": f"{SITE_ACC}|ACC20002"}).json()["entry"]) == 1


def test_standalone_and_enrich_records_of_one_report_land(fhir):
    """The same report in both profiles is accepted by the engine; enrich writes only Device, Observations and
    Provenance. Medplum's router (4.5.2) does not resolve conditional references inside a transaction: it stores
    them as written, so against Medplum the sink must resolve them (or use placeholders). docs/HL7_FHIR.md says so."""
    labeler = TableLabeler(default={"Atelectasis": P})
    (standalone,) = convert("v27_st_lines.hl7", labeler, OutputProfile(**SITE))
    body = post(fhir, standalone.bundle)
    assert [e["response"]["location"].split("/")[0] for e in body["entry"]] == \
        ["Patient", "Device", "DiagnosticReport", "Observation", "Provenance"]
    (enrich,) = convert("v27_st_lines.hl7", labeler, OutputProfile(kind="enrich", **SITE))
    body = post(fhir, enrich.bundle)
    assert [e["response"]["location"].split("/")[0] for e in body["entry"]] == ["Device", "Observation", "Provenance"]
    (obs,) = [e["resource"] for e in fhir.get("/Observation", params={"identifier": f"{SITE_ACC}|ACC20004"})
              .json()["entry"]]
    assert obs["subject"]["reference"] == f"Patient?identifier={SITE_MRN}|MRN200004"  # left unresolved by Medplum
    assert len(_patients(fhir, "MRN200004")) == 1


def test_medplum_limits_conditional_creates_to_small_transactions(fhir):
    """Medplum runs a transaction with a conditional create serialisably and then refuses more than 8 entries:
    placeholders fit reports with up to 4 findings there (docs/HL7_FHIR.md)."""
    many = {name: N for name in ("Cardiomegaly", "Pleural Effusion", "Edema", "Pneumothorax", "Consolidation")}
    (item,) = convert("v23_tx_mllp.hl7", TableLabeler(default=many), OutputProfile(kind="enrich", placeholders=True))
    response = fhir.post("/", content=item.bundle, headers={"content-type": "application/fhir+json"})
    assert response.status_code == 400 and "strict isolation" in response.text


def test_out_of_scope_study_never_reaches_the_server(fhir):
    from connector.rules.labeler import RuleLabeler

    (item,) = convert("brain_mri.hl7", RuleLabeler())
    assert isinstance(item, Skipped) and item.reason == "excluded:mr" and item.signal == "procedure-text"
    report = parse_reports(split_messages(fixture_bytes("brain_mri.hl7"))[0])[0]
    assert fhir.get(f"/DiagnosticReport/{report.diagnostic_report_id}").status_code == 404
