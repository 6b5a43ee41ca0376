from __future__ import annotations

import asyncio
import base64
import csv
import json

from typer.testing import CliRunner

from mappings.vocabulary import OBSERVATIONS

from connector.cli import app
from connector.pipeline import convert_message, split_messages

from tests.hl7_fhir.conftest import FIXTURES, SAMPLES, fixture_bytes

runner = CliRunner()


def run(*args: str):
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result


def test_convert_writes_bundles_and_dead_letters(tmp_path):
    good = ["v23_tx_mllp.hl7", "v24_tx_tilde_lf.hl7", "two_obr.hl7"]
    bad = ["not_oru_adt.hl7", "truncated_frame.hl7", "no_report_text.hl7"]
    # one input file holding several messages, framed and unframed, plus separate files
    mixed = tmp_path / "mixed.hl7"
    mixed.write_bytes(fixture_bytes("v23_tx_mllp.hl7") + fixture_bytes("not_oru_adt.hl7"))
    files = [str(mixed)] + [str(FIXTURES / n) for n in good[1:] + bad[1:]]
    out = tmp_path / "out"
    result = run("convert", *files, "--out", str(out), "--labeler", "rules")
    assert result.exit_code == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["converted"] == 3
    # two_obr holds two reports: a chest radiograph, and a rib series, which is out of the labelers' scope
    assert summary["bundles"] == 3
    assert summary["skipped"] == 1 and summary["skipped_by_reason"] == {"excluded:ribs": 1}
    assert summary["rejected_by_reason"] == {"no-report-text": 1, "not-oru": 1, "truncated": 1}

    bundles = sorted(out.glob("*.json"))
    assert len(bundles) == 3
    for path in bundles:
        bundle = json.loads(path.read_bytes())
        assert bundle["id"] == path.stem and bundle["type"] == "transaction"

    records = [json.loads(p.read_text()) for p in sorted((out / "dead-letter").glob("*.json"))]
    assert sorted(r["reason"] for r in records) == ["no-report-text", "not-oru", "truncated"]
    by_reason = {r["reason"]: r for r in records}
    # the dead letter holds the message's exact bytes and where it came from
    assert base64.b64decode(by_reason["not-oru"]["raw_base64"]) == fixture_bytes("not_oru_adt.hl7")
    assert by_reason["not-oru"]["source"] == str(mixed)
    assert base64.b64decode(by_reason["truncated"]["raw_base64"]) == fixture_bytes("truncated_frame.hl7")
    assert all(r["detail"] for r in records)


def test_convert_output_equals_the_library_path(tmp_path):
    """`radlabel convert` and the streaming connector share convert_message: same bytes."""
    from connector.rules.labeler import RuleLabeler

    out = tmp_path / "out"
    assert run("convert", str(FIXTURES / "v27_st_lines.hl7"), "--out", str(out)).exit_code == 0
    raw = split_messages(fixture_bytes("v27_st_lines.hl7"))[0]
    (converted,) = asyncio.run(convert_message(raw, RuleLabeler()))
    assert (out / f"{converted.bundle_id}.json").read_bytes() == converted.bundle
    # the rule labeler saw the pneumothorax in this report
    names = {
        e["resource"]["code"]["text"]
        for e in json.loads(converted.bundle)["entry"]
        if e["resource"]["resourceType"] == "Observation" and e["resource"]["status"] != "entered-in-error"
    }
    assert "Pneumothorax" in names


def test_convert_is_deterministic_and_dead_letters_do_not_overwrite(tmp_path):
    out = tmp_path / "out"
    files = [str(p) for p in sorted(SAMPLES.glob("*.hl7"))]
    assert run("convert", *files, "--out", str(out)).exit_code == 0
    first = {p.name: p.read_bytes() for p in out.glob("*.json")}
    assert run("convert", *files, "--out", str(out)).exit_code == 0
    assert {p.name: p.read_bytes() for p in out.glob("*.json")} == first
    assert len(list((out / "dead-letter").glob("*.json"))) == 2  # the ADT sample, once per run


def test_convert_garbage_file_exits_zero(tmp_path):
    result = run("convert", str(FIXTURES / "garbage.bin"), "--out", str(tmp_path / "out"))
    assert result.exit_code == 0
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["converted"] == 0 and summary["rejected"] >= 1


def test_label_csv_and_jsonl(tmp_path):
    reports = {
        "r1": "FINDINGS: The heart is enlarged. No pleural effusion.\nIMPRESSION: Cardiomegaly.",
        "r2": "IMPRESSION: No acute cardiopulmonary process.",
    }
    source = tmp_path / "in.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "report"])
        writer.writerows(reports.items())
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text("\n".join(json.dumps({"id": k, "text": v}) for k, v in reports.items()) + "\n")

    outputs = []
    for path in (source, jsonl):
        output = tmp_path / f"{path.suffix[1:]}-labels.csv"
        result = run("label", "--input", str(path), "--output", str(output), "--labeler", "rules")
        assert result.exit_code == 0, result.output
        with output.open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == ["id", *OBSERVATIONS]
        outputs.append(rows)
    assert outputs[0] == outputs[1]
    rows = {row[0]: dict(zip(OBSERVATIONS, row[1:])) for row in outputs[0][1:]}
    assert rows["r1"]["Cardiomegaly"] == "1"
    assert rows["r1"]["Pleural Effusion"] == "0"
    assert rows["r2"]["No Finding"] == "1"
    assert set(v for row in rows.values() for v in row.values()) <= {"1", "0", "-1", ""}


def test_label_rejects_bad_input_columns(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text("identifier,body\nx,y\n")
    result = runner.invoke(app, ["label", "--input", str(source), "--output", str(tmp_path / "o.csv")])
    assert result.exit_code != 0
    assert not (tmp_path / "o.csv").exists()


def test_label_progress_bar_only_for_more_than_100_reports(tmp_path):
    for count, expect_bar in ((101, True), (5, False)):
        source = tmp_path / f"in{count}.jsonl"
        source.write_text("".join(json.dumps({"id": str(i), "report": "No pneumothorax."}) + "\n" for i in range(count)))
        output = tmp_path / f"out{count}.csv"
        result = runner.invoke(app, ["label", "--input", str(source), "--output", str(output)])
        assert result.exit_code == 0
        assert (f"{count}/{count}" in result.stderr) is expect_bar
        with output.open(newline="") as handle:
            rows = list(csv.reader(handle))
        assert len(rows) == count + 1
        assert rows[1][1 + OBSERVATIONS.index("Pneumothorax")] == "0"


def test_convert_stops_with_exit_2_when_the_model_server_is_down(tmp_path):
    # A real connection attempt to a port nothing listens on (the OpenAI-compatible client, if present).
    import importlib.util

    import pytest

    from tests.hl7_fhir.conftest import REPO

    spec = importlib.util.find_spec("inference_client.openai_compat")
    # An editable install of another checkout can supply the module from outside this tree: that is not this branch.
    if spec is None or spec.origin is None or not spec.origin.startswith(str(REPO)):
        pytest.skip("inference_client.openai_compat not in this branch")
    result = runner.invoke(
        app,
        ["convert", str(FIXTURES / "v23_tx_mllp.hl7"), "--out", str(tmp_path / "out"), "--labeler", "llm",
         "--endpoint", "http://127.0.0.1:9"],
    )
    assert result.exit_code == 4, result.output  # a service it needs is unavailable
    assert "labeler unavailable" in result.stderr


def test_label_writes_blank_rows_for_text_that_asserts_nothing_and_scopes_on_request(tmp_path):
    source = tmp_path / "in.csv"
    source.write_text('id,report\nA,"Report pending. Please see PACS."\nB,"Lungs are clear. Heart size normal."\n'
                      'C,""\nD,"EXAMINATION: Brain MRI\nFINDINGS: No mass or mass effect."\n', encoding="utf-8")
    out = tmp_path / "out.csv"
    result = run("label", "--input", str(source), "--output", str(out))
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout.strip().splitlines()[-1])["non_diagnostic"] == 2
    rows = {r["id"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
    assert all(v == "" for k, v in rows["A"].items() if k != "id")  # never No Finding
    assert all(v == "" for k, v in rows["C"].items() if k != "id")
    assert rows["B"]["No Finding"] == "1"
    assert rows["D"]["No Finding"] == "1"  # without --scope every row is labeled, as the docs say

    scoped = tmp_path / "scoped.csv"
    result = run("label", "--input", str(source), "--output", str(scoped), "--scope", "text")
    assert result.exit_code == 0, result.stdout
    rows = {r["id"]: r for r in csv.DictReader(scoped.open(encoding="utf-8"))}
    assert {k: r["in_scope"] for k, r in rows.items()} == {"A": "0", "B": "1", "C": "0", "D": "0"}
    assert rows["B"]["No Finding"] == "1" and rows["D"]["No Finding"] == ""
    assert json.loads(result.stdout.strip().splitlines()[-1])["out_of_scope"] == 3
