"""`radlabel train` and `radlabel label --labeler llm --model` on a generic table (tiny model, a few steps)."""

from __future__ import annotations

import csv
import json

from typer.testing import CliRunner

from connector.cli import app
from mappings.vocabulary import OBSERVATIONS
from training.data import Example, write_jsonl
from mappings.vocabulary import Certainty as C


def test_train_then_label_with_the_trained_model(tmp_path):
    data = tmp_path / "train.jsonl"
    write_jsonl([Example(id=f"r{i}", report=f"FINDINGS: Report {i}. Heart size is normal.",
                         labels={"Cardiomegaly": C.NEGATIVE}) for i in range(8)], data)
    out = tmp_path / "run"
    runner = CliRunner()
    res = runner.invoke(app, ["train", "--out", str(out), "--base", "tiny-qwen2", "--table", str(data),
                              "--max-steps", "2", "--val-fraction", "0.25", "--max-length", "256",
                              "--save-steps", "100", "--logging-steps", "1", "--threads", "1"])
    assert res.exit_code == 0, res.output
    # The Trainer prints its own log lines; the command's result is the JSON line naming the model dir.
    (line,) = [x for x in res.stdout.splitlines() if x.startswith('{"model_dir"')]
    result = json.loads(line)
    assert result["steps"] == 2 and result["n_train"] + result["n_val"] == 8
    manifest = json.loads((out / "model" / "manifest.json").read_text())
    assert manifest["data"]["sources"][0] == {"kind": "table", "path": str(data), "n": 8}
    assert manifest["data"]["split"]["val_fraction"] == 0.25

    reports = tmp_path / "reports.csv"
    reports.write_text("id,report\nq1,FINDINGS: Heart size is normal.\n")
    labels = tmp_path / "labels.csv"
    res = runner.invoke(app, ["label", "--input", str(reports), "--output", str(labels), "--labeler", "llm",
                              "--model", str(out / "model")])
    # Two steps do not teach a random model JSON: the report must be reported as failed, never written blank.
    (line,) = [x for x in res.stdout.splitlines() if x.startswith('{"labeled"')]
    summary = json.loads(line)
    assert summary["labeled"] + sum(summary["failed"].values()) == 1
    rows = list(csv.reader(labels.open()))
    assert rows[0] == ["id", *OBSERVATIONS] and len(rows) == 1 + summary["labeled"]
    assert res.exit_code == (5 if summary["failed"] else 0)  # 5: partial failure
