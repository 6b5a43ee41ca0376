"""Bundles applied to a real FHIR engine: Medplum's FHIR router (npm @medplum/fhir-router) over its in-memory
repository, served by tests/fhir_server/server.mjs. `make install` runs `npm install` there."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from collections.abc import Iterator

import httpx
import pytest

from connector.pipeline import convert_message, parse_reports, split_messages

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
                body = post(fhir, item.bundle)
                assert len(body["entry"]) == 17
                applied += 1
    assert applied == 8
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

