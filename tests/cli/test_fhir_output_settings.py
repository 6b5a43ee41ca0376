"""`fhir.*` settings (output profile, identifier systems) through `radlabel convert`: flag > env > YAML > default,
unknown keys and bad values are one-line errors, and what convert writes besides the bundles (index.jsonl with the
report-version facts, dead letters for reports the profile cannot write)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.settings import SettingsError, load_settings

from tests.hl7_fhir.conftest import FIXTURES

runner = CliRunner()
SITE_MRN = "https://demohosp.example/fhir/sid/mrn"


@pytest.fixture(autouse=True)
def _no_ambient_settings(monkeypatch):
    monkeypatch.delenv("RADLABEL_CONFIG", raising=False)
    for name in ("RADLABEL_FHIR__PROFILE", "RADLABEL_FHIR__UNKNOWN_AUTHORITY",
                 "RADLABEL_FHIR__PATIENT_IDENTIFIER_SYSTEMS"):
        monkeypatch.delenv(name, raising=False)


def convert(tmp_path: Path, *args: str, env: dict[str, str] | None = None, files: tuple[str, ...] = ("v23_tx_mllp.hl7",)):
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", *(str(FIXTURES / f) for f in files), "--out", str(out), *args],
                           env=env, catch_exceptions=False)
    return result, out


def profiles_written(out: Path) -> set[str]:
    kinds = set()
    for path in out.glob("*.json"):
        types = {e["resource"]["resourceType"] for e in json.loads(path.read_bytes())["entry"]}
        kinds.add("standalone" if "Patient" in types else "enrich")
    return kinds


def test_convert_defaults_to_standalone_and_profile_follows_flag_env_yaml(tmp_path):
    result, out = convert(tmp_path / "a")
    assert result.exit_code == 0, result.output
    assert profiles_written(out) == {"standalone"}

    config = tmp_path / "radlabel.yaml"
    config.write_text("fhir:\n  profile: enrich\n")
    result, out = convert(tmp_path / "b", "--config", str(config))
    assert result.exit_code == 0 and profiles_written(out) == {"enrich"}
    # env beats YAML, the flag beats env
    result, out = convert(tmp_path / "c", "--config", str(config), env={"RADLABEL_FHIR__PROFILE": "standalone"})
    assert result.exit_code == 0 and profiles_written(out) == {"standalone"}
    result, out = convert(tmp_path / "d", "--config", str(config), "--profile", "enrich",
                          env={"RADLABEL_FHIR__PROFILE": "standalone"})
    assert result.exit_code == 0 and profiles_written(out) == {"enrich"}


def test_bad_fhir_settings_are_one_line_errors(tmp_path):
    result, _ = convert(tmp_path, "--profile", "hospital")
    assert result.exit_code == 2
    (line,) = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert line.startswith("error: ") and "--profile" in line

    config = tmp_path / "typo.yaml"
    config.write_text("fhir:\n  placeholder: true\n")
    with pytest.raises(SettingsError, match="placeholder"):
        load_settings(config)
    config.write_text("fhir:\n  patient_identifier_systems:\n    - {namespace: DEMOHOSP, system: 'not a uri'}\n")
    with pytest.raises(SettingsError, match="absolute URI"):
        load_settings(config)
    config.write_text("fhir:\n  patient_identifier_systems:\n    - {system: 'urn:x'}\n")
    with pytest.raises(SettingsError, match="namespace and/or universal_id"):
        load_settings(config)
    config.write_text("fhir:\n  patient_identifier_systems:\n    - {namespace: A, system: 'urn:a'}\n"
                      "    - {namespace: A, system: 'urn:b'}\n")
    with pytest.raises(SettingsError, match="two rules"):
        load_settings(config)


def test_identifier_systems_from_the_environment(monkeypatch):
    monkeypatch.setenv("RADLABEL_FHIR__PATIENT_IDENTIFIER_SYSTEMS",
                       f'[{{"namespace": "DEMOHOSP", "universal_id": "1.2.3", "system": "{SITE_MRN}"}}]')
    profile = load_settings(None).fhir.output_profile("enrich")
    assert profile.kind == "enrich" and profile.patient_systems[0].system == SITE_MRN
    assert profile.patient_systems[0].universal_id == "1.2.3"
    monkeypatch.setenv("RADLABEL_FHIR__PATIENT_IDENTIFIER_SYSTEMS", "DEMOHOSP=urn:x")
    with pytest.raises(SettingsError, match="RADLABEL_FHIR__PATIENT_IDENTIFIER_SYSTEMS.*JSON list"):
        load_settings(None)


def test_identifier_systems_from_yaml_reach_the_bundle(tmp_path):
    config = tmp_path / "site.yaml"
    config.write_text(
        "fhir:\n"
        "  patient_identifier_systems:\n"
        f"    - {{namespace: FIXHOSP, universal_id: 1.2.3.4.5, universal_id_type: ISO, system: '{SITE_MRN}'}}\n"
    )
    # FIXHOSP (v23) and FIXHOSP&1.2.3.4.5&ISO (v251) name one authority: one system
    result, out = convert(tmp_path, "--config", str(config),
                          files=("v23_tx_mllp.hl7", "v251_ft_escapes_crlf_bom.hl7"))
    assert result.exit_code == 0, result.output
    systems = set()
    for path in out.glob("*.json"):
        (patient,) = [e["resource"] for e in json.loads(path.read_bytes())["entry"]
                      if e["resource"]["resourceType"] == "Patient"]
        systems.add(patient["identifier"][0]["system"])
    assert systems == {SITE_MRN}
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    # the MRNs were mapped; the accessions were not (no accession rule): counted, by kind
    assert summary["identifier_fallbacks"] == {"accession": 2}


def test_index_holds_the_version_facts_of_every_bundle(tmp_path):
    files = ("corrected_1_prelim.hl7", "corrected_2_corrected.hl7", "corrected_3_cancelled.hl7")
    result, out = convert(tmp_path, "--profile", "enrich", files=files)
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in (out / "index.jsonl").read_text().splitlines()]
    assert [line["report-status"] for line in lines] == ["P", "C", "X"]
    assert len({line["report-id"] for line in lines}) == 1 and len({line["key"] for line in lines}) == 1
    assert {line["fhir-profile"] for line in lines} == {"enrich"}
    for line in lines:
        bundle = json.loads((out / line["file"]).read_bytes())
        assert bundle["id"] == line["bundle-id"]
        (prov,) = [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Provenance"]
        facts = {f["url"]: f.get("valueCode") or f.get("valueDateTime") for f in prov["extension"][0]["extension"]}
        assert facts["status"] == line["report-status"]
        assert facts.get("resultTime", "") == line["report-time"]
        assert facts.get("messageTime", "") == line["message-time"]
    # the cancelled version carries no Observation at all
    cancelled = json.loads((out / lines[-1]["file"]).read_bytes())
    assert not [e for e in cancelled["entry"] if e["resource"]["resourceType"] == "Observation"]


def test_report_without_patient_identifier_is_a_dead_letter(tmp_path):
    raw = (FIXTURES / "v24_tx_tilde_lf.hl7").read_bytes().replace(b"MRN200002^^^FIXHOSP^MR", b"")
    source = tmp_path / "no_pid3.hl7"
    source.write_bytes(raw)
    out = tmp_path / "out"
    result = runner.invoke(app, ["convert", str(source), "--out", str(out), "--profile", "enrich"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["bundles"] == 0 and summary["rejected_by_reason"] == {"no-patient-identifier": 1}
    (record,) = [json.loads(p.read_text()) for p in (out / "dead-letter").glob("*.json")]
    assert base64.b64decode(record["raw_base64"]) == raw
    assert not list(out.glob("*.json"))
