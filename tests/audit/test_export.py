"""audit export: Bundles -> one row per report version x observation, golden on a fixed fixture, both bundle
shapes, salted patient hash, duplicates, CSV injection."""

from __future__ import annotations

import asyncio
import copy
import json
import os
from pathlib import Path

import orjson
import pandas as pd
import pytest
from typer.testing import CliRunner

from connector.audit.export import export_records
from connector.audit.rows import COLUMNS, REPORT_VERSION_EXTENSION, PatientHasher, bundle_rows
from connector.audit.sources import BundleRecord, folder_records
from connector.audit.table import read_table, write_table
from connector.cli import app
from connector.cli.convert import convert_files
from connector.stream.synthetic import PATIENTS

from .fixtures import PHRASES_A, PhraseLabeler, hl7_file, messages

GOLDEN = Path(__file__).parent / "golden"
SALT = "audit-test-salt"


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    out = tmp_path / "bundles"
    asyncio.run(convert_files([hl7_file(messages(), tmp_path / "in.hl7")], out, PhraseLabeler(PHRASES_A)))
    return out


def run_cli(*args: str, salt: str | None = SALT) -> object:
    env = {"RADLABEL_AUDIT__SALT": salt} if salt is not None else {}
    saved = os.environ.pop("RADLABEL_AUDIT__SALT", None)
    try:
        return CliRunner().invoke(app, list(args), env=env)
    finally:
        if saved is not None:
            os.environ["RADLABEL_AUDIT__SALT"] = saved


def test_folder_export_matches_golden_table(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "labels.csv"
    result = run_cli("audit", "export", "--folder", str(folder), "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["bundles"] == 8 and summary["rows"] == 8 * 14
    golden = GOLDEN / "folder_export.csv"
    if os.environ.get("RADLABEL_UPDATE_GOLDEN") == "1":
        golden.write_bytes(out.read_bytes())
    assert out.read_text(encoding="utf-8") == golden.read_text(encoding="utf-8")
    # What the golden holds, spelled out: three versions of report 0 (P, F, C) with one accession, the labels of
    # the phrase table and their evidence.
    frame = read_table(out)
    versions = frame.drop_duplicates("bundle_id")
    assert sorted(versions.loc[versions["accession"] == "SYN00000000", "report_status"]) == ["C", "F", "P"]
    cardio = frame[(frame["accession"] == "SYN00000001") & (frame["observation"] == "Pneumonia")].iloc[0]
    assert (cardio["class"], cardio["evidence"]) == ("uncertain", '"Possible right lower lobe pneumonia"')
    assert set(frame["labeler"]) == {"table"} and set(frame["model_version"]) == {"1.0.0"}


def test_parquet_holds_the_same_table_with_types(folder: Path, tmp_path: Path) -> None:
    assert run_cli("audit", "export", "--folder", str(folder), "--out", str(tmp_path / "t.csv")).exit_code == 0
    assert run_cli("audit", "export", "--folder", str(folder), "--out", str(tmp_path / "t.parquet")).exit_code == 0
    csv_frame, parquet = read_table(tmp_path / "t.csv"), read_table(tmp_path / "t.parquet")
    assert list(parquet.columns) == list(COLUMNS)
    pd.testing.assert_frame_equal(csv_frame, parquet, check_dtype=False)
    import pyarrow.parquet as pq

    schema = pq.read_schema(tmp_path / "t.parquet")
    assert str(schema.field("fallback").type) == "bool" and str(schema.field("source_offset").type) == "int64"


def test_patient_hash_is_salted_and_no_identifier_leaks(folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.csv"
    assert run_cli("audit", "export", "--folder", str(folder), "--out", str(out)).exit_code == 0
    text = out.read_text(encoding="utf-8")
    for family, given, mrn in PATIENTS:
        assert mrn not in text and family not in text and given not in text
    hashes = read_table(out).drop_duplicates("bundle_id").groupby("accession")["patient_hash"].nunique()
    assert (hashes == 1).all()  # every version of a report: one patient
    other = tmp_path / "b.csv"
    assert run_cli("audit", "export", "--folder", str(folder), "--out", str(other), salt="another").exit_code == 0
    assert set(read_table(out)["patient_hash"]).isdisjoint(read_table(other)["patient_hash"])


def test_missing_salt_is_a_usage_error(folder: Path, tmp_path: Path) -> None:
    result = run_cli("audit", "export", "--folder", str(folder), "--out", str(tmp_path / "a.csv"), salt=None)
    assert result.exit_code == 2
    assert "audit.salt" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "a.csv").exists()


def _new_shape(bundle: dict, profile: str) -> dict:
    """The bundle as issue 17 writes it: only asserted findings, identifiers, the report-version extension; enrich
    references Patient and DiagnosticReport conditionally instead of carrying them."""
    new = copy.deepcopy(bundle)
    report = next(e["resource"] for e in new["entry"] if e["resource"]["resourceType"] == "DiagnosticReport")
    patient = next(e["resource"] for e in new["entry"] if e["resource"]["resourceType"] == "Patient")
    acc = report["identifier"][0]
    status = {"final": "F", "preliminary": "P", "corrected": "C", "cancelled": "X"}[report["status"]]
    version = {"url": REPORT_VERSION_EXTENSION, "extension": [{"url": "status", "valueCode": status},
                                                              {"url": "resultTime", "valueDateTime": report["issued"]}]}
    entries = []
    for entry in new["entry"]:
        resource = entry["resource"]
        kind = resource["resourceType"]
        if kind == "Observation":
            if resource["status"] == "entered-in-error":
                continue
            local = next(c["code"] for c in resource["code"]["coding"] if c["system"].startswith("urn:radlabel"))
            resource["identifier"] = [{"system": "urn:radlabel:label", "value": f"{report['id']}:{local}"}, acc]
            resource["extension"] = [version]
            if profile == "enrich":
                ident = patient["identifier"][0]
                resource["subject"] = {"reference": f"Patient?identifier={ident['system']}|{ident['value']}"}
                resource["derivedFrom"] = [{"reference": f"DiagnosticReport?identifier={acc['system']}|{acc['value']}"}]
        if kind == "Provenance":
            resource["extension"] = [version]
        if profile == "enrich" and kind in ("Patient", "DiagnosticReport"):
            continue
        entries.append(entry)
    new["entry"] = entries
    return new


@pytest.mark.parametrize("profile", ["standalone", "enrich"])
def test_both_bundle_shapes_give_the_same_rows(folder: Path, profile: str) -> None:
    hasher = PatientHasher(SALT)
    compared = 0
    for record in folder_records(folder):
        bundle = orjson.loads(record.value)
        old = bundle_rows(bundle, {}, hasher)
        new = bundle_rows(_new_shape(bundle, profile), {}, hasher)
        if profile == "enrich":  # the procedure lives on the DiagnosticReport, which enrich does not carry
            old = [{**row, "procedure": ""} for row in old]
        assert new == old
        compared += any(row["class"] != "blank" for row in old)
    assert compared >= 6


def test_headers_win_and_duplicates_and_junk_are_counted(folder: Path) -> None:
    hasher = PatientHasher(SALT)
    value = next(folder_records(folder)).value
    headers = {"source-topic": "in", "source-partition": "2", "source-offset": "41",
               "source-timestamp": "1700000000000",
               "labeler": "llm", "labeler-version": "2025.1", "model": "smollm2-135m", "fallback": "true",
               "replay-of": "in:0=0-10"}
    result = export_records([BundleRecord(value, headers), BundleRecord(value, headers), BundleRecord(b"not json"),
                             BundleRecord(b'{"resourceType": "Patient"}')], hasher)
    assert (result.bundles, result.duplicates, result.unreadable, len(result.rows)) == (1, 1, 2, 14)
    row = result.rows[0]
    assert (row["source_topic"], row["source_partition"], row["source_offset"]) == ("in", 2, 41)
    assert (row["labeler"], row["model_version"], row["model"], row["fallback"]) == ("llm", "2025.1", "smollm2-135m",
                                                                                     True)
    assert row["replay_of"] == "in:0=0-10"


def test_formula_like_evidence_is_neutralised_in_csv_and_read_back(tmp_path: Path) -> None:
    rows = [{c: "" for c in COLUMNS} | {"evidence": "-2 cm nodule", "fallback": False, "source_offset": 3}]
    write_table(rows, COLUMNS, tmp_path / "t.csv", ("source_offset",))
    assert "'-2 cm nodule" in (tmp_path / "t.csv").read_text(encoding="utf-8")
    back = read_table(tmp_path / "t.csv")
    assert back.loc[0, "evidence"] == "-2 cm nodule" and back.loc[0, "source_offset"] == 3


def test_bad_output_suffix_and_bad_window_are_usage_errors(folder: Path, tmp_path: Path) -> None:
    bad = run_cli("audit", "export", "--folder", str(folder), "--out", str(tmp_path / "t.xlsx"))
    assert bad.exit_code == 2 and ".csv or .parquet" in bad.output
    both = run_cli("audit", "export", "--folder", str(folder), "--from", "2025-01-01", "--out", str(tmp_path / "t.csv"))
    assert both.exit_code == 2


def test_a_folder_index_gives_order_and_headers(folder: Path) -> None:
    """index.jsonl (convert's report-version facts, or every header of a replay) orders the Bundles and adds the
    headers; a Bundle file it does not list is not read."""
    files = sorted(folder.glob("*.json"))
    lines = [{"file": p.name, "key": "k", "report-status": "C", "source-topic": "hl7.in", "source-offset": str(i)}
             for i, p in enumerate(reversed(files[1:]))]
    (folder / "index.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    records = list(folder_records(folder))
    assert [r.value for r in records] == [p.read_bytes() for p in reversed(files[1:])]
    rows = export_records(records, PatientHasher(SALT)).rows
    assert {r["report_status"] for r in rows} == {"C"} and {r["source_topic"] for r in rows} == {"hl7.in"}
    assert [r["source_offset"] for r in rows[::14]] == list(range(len(files) - 1))
