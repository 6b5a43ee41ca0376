"""Bundles applied to a real FHIR engine: Medplum's FHIR router (npm @medplum/fhir-router) over its in-memory
repository, served by tests/fhir_server/server.mjs. `make install` runs `npm install` there."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

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


def convert(name: str, labeler) -> list:
    return asyncio.run(convert_message(split_messages(fixture_bytes(name))[0], labeler))


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
    from connector.rules.labeler import RuleLabeler

    labeler = RuleLabeler()
    applied = 0
    for path in sorted(SAMPLES.glob("*.hl7")):
        if "not-oru" in path.name:
            continue
        for raw in split_messages(path.read_bytes()):
            for item in asyncio.run(convert_message(raw, labeler)):
                if isinstance(item, Skipped):
                    assert "not-chest" in path.name and item.reason == "excluded:mr"
                    continue
                body = post(fhir, item.bundle)
                # Patient, the labeler Device, DiagnosticReport, 14 Observations, Provenance
                assert len(body["entry"]) == 18
                applied += 1
    assert applied == 8
    # the labeler is one Device on the server, referenced by every label and Provenance
    (device,) = [e["resource"] for e in fhir.get("/Device", params={"_count": "100"}).json()["entry"]]
    assert device["type"]["coding"][0]["code"] == "Artificial-Intelligence"
    assert device["version"] == [{"value": labeler.info.version}]
    tagged = fhir.get("/Observation", params={"_security": "AIAST", "_count": "1000"}).json()
    observations = fhir.get("/Observation", params={"_count": "1000"}).json()
    assert len(tagged["entry"]) == len(observations["entry"]) >= 7 * 14  # prelim + corrected share theirs
    for entry in observations["entry"]:
        obs = entry["resource"]
        assert {"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "AIAST",
                "display": "Artificial Intelligence asserted"} in obs["meta"]["security"]
        assert obs["device"]["reference"] == f"Device/{device['id']}"
    stored = fhir.get("/DiagnosticReport", params={"_count": "100"}).json()
    samples = [e for e in stored["entry"] if e["resource"]["identifier"][0]["system"].endswith(":DEMOHOSP")]
    assert len(samples) == 7  # the preliminary and corrected samples share one DiagnosticReport


def test_correction_leaves_exactly_the_new_labels(fhir):
    prelim_labels = {"Pleural Effusion": P, "Consolidation": U, "Atelectasis": N}
    corrected_labels = {"Pleural Effusion": N, "Atelectasis": P}
    labeler = TableLabeler(
        table={"Right pleural effusion.": prelim_labels, "Right lower lobe atelectasis.": corrected_labels}
    )
    (prelim,) = convert("corrected_1_prelim.hl7", labeler)
    (corrected,) = convert("corrected_2_corrected.hl7", labeler)
    post(fhir, prelim.bundle)
    report = parse_reports(split_messages(fixture_bytes("corrected_1_prelim.hl7"))[0])[0]
    dr_id = report.diagnostic_report_id
    assert live_labels(fhir, dr_id) == {"Pleural Effusion": "52101004", "Consolidation": "82334004", "Atelectasis": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "preliminary"

    post(fhir, corrected.bundle)
    assert live_labels(fhir, dr_id) == {"Pleural Effusion": "2667000", "Atelectasis": "52101004"}
    # the query docs/HL7_FHIR.md tells consumers to use, answered by the server itself
    current = fhir.get(
        "/Observation",
        params={"derived-from": f"DiagnosticReport/{dr_id}", "status:not": "entered-in-error", "_count": "100"},
    ).json()
    assert sorted(e["resource"]["code"]["text"] for e in current["entry"]) == ["Atelectasis", "Pleural Effusion"]
    dr = fhir.get(f"/DiagnosticReport/{dr_id}").json()
    assert dr["status"] == "corrected"
    assert sorted(r["reference"] for r in dr["result"]) == sorted(
        f"Observation/{report.observation_id(n)}" for n in ("Pleural Effusion", "Atelectasis")
    )
    consolidation = fhir.get(f"/Observation/{report.observation_id('Consolidation')}").json()
    assert consolidation["status"] == "entered-in-error"
    # the history keeps what the preliminary report asserted
    history = fhir.get(f"/Observation/{report.observation_id('Consolidation')}/_history").json()
    assert {e["resource"]["status"] for e in history["entry"]} >= {"preliminary", "entered-in-error"}

    # replaying the same version is idempotent
    post(fhir, corrected.bundle)
    assert live_labels(fhir, dr_id) == {"Pleural Effusion": "2667000", "Atelectasis": "52101004"}

    (cancelled,) = convert("corrected_3_cancelled.hl7", labeler)
    post(fhir, cancelled.bundle)
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
    post(fhir, prelim.bundle)
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "preliminary"

    (final,) = convert("versions_2_final.hl7", labeler)
    post(fhir, final.bundle)
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004", "Cardiomegaly": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "final"

    (addendum,) = convert("versions_3_addendum_only.hl7", labeler)
    assert isinstance(addendum, Skipped) and addendum.reason == "non-diagnostic:communication"
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "52101004", "Cardiomegaly": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "final"

    (pending,) = convert("versions_5_pending.hl7", labeler)
    assert isinstance(pending, Skipped) and pending.reason == "non-diagnostic:pending"

    (corrected,) = convert("versions_4_corrected.hl7", labeler)
    post(fhir, corrected.bundle)
    assert live_labels(fhir, dr_id) == {"Pneumothorax": "2667000"}
    assert fhir.get(f"/DiagnosticReport/{dr_id}").json()["status"] == "corrected"


def test_out_of_scope_study_never_reaches_the_server(fhir):
    from connector.rules.labeler import RuleLabeler

    (item,) = convert("brain_mri.hl7", RuleLabeler())
    assert isinstance(item, Skipped) and item.reason == "excluded:mr" and item.signal == "procedure-text"
    report = parse_reports(split_messages(fixture_bytes("brain_mri.hl7"))[0])[0]
    assert fhir.get(f"/DiagnosticReport/{report.diagnostic_report_id}").status_code == 404
