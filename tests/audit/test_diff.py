"""audit diff: transition counts, agreement and kappa against a hand count; the truth-file path is `radlabel
evaluate`'s own code."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from connector.audit.diff import diff, label_csv
from connector.audit.table import read_table
from connector.cli import app
from connector.cli.convert import convert_files
from connector.evaluate.report import evaluate

from .fixtures import PHRASES_A, PHRASES_B, PhraseLabeler, hl7_file, messages

# Ten reports and two more versions of report 0. Report i's text holds synthetic sentences i, i+1, i+2 (mod 10);
# B differs from A on three phrases, so by hand:
#   Pneumonia  uncertain -> positive : reports 1, 2, 3 (sentence 3)
#   Edema      positive -> uncertain : reports 4, 5, 6 (sentence 6)
#   Fracture   positive -> blank     : reports 7, 8, 9 (sentence 9)
#   Lung Opacity blank -> positive   : reports 7, 8, 9
VERSIONS = 12
HAND = {
    "Pneumonia": {("uncertain", "positive"): 3, ("blank", "blank"): 9},
    "Edema": {("positive", "uncertain"): 3, ("blank", "blank"): 9},
    "Fracture": {("positive", "blank"): 3, ("blank", "blank"): 9},
    "Lung Opacity": {("blank", "positive"): 3, ("blank", "blank"): 9},
}
CLASSES = ("blank", "negative", "uncertain", "positive")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("diff")
    source = hl7_file(messages(10), root / "in.hl7")
    paths = []
    for name, phrases, suffix in (("live", PHRASES_A, ".csv"), ("candidate", PHRASES_B, ".parquet")):
        asyncio.run(convert_files([source], root / name, PhraseLabeler(phrases, name=name)))
        out = root / f"{name}{suffix}"
        result = CliRunner().invoke(app, ["audit", "export", "--folder", str(root / name), "--out", str(out)],
                                    env={"RADLABEL_AUDIT__SALT": "s"})
        assert result.exit_code == 0, result.output
        paths.append(out)
    return paths[0], paths[1]


def test_transition_counts_agreement_and_kappa_match_a_hand_count(exports: tuple[Path, Path]) -> None:
    result = diff(read_table(exports[0]), read_table(exports[1]), "live", "candidate")
    assert (result.common_versions, result.only_a, result.only_b) == (VERSIONS, 0, 0)
    by_name = {d.observation: d for d in result.observations}
    for name, cells in HAND.items():
        expected = np.zeros((4, 4), dtype=int)
        for (a, b), n in cells.items():
            expected[CLASSES.index(a), CLASSES.index(b)] = n
        assert by_name[name].transitions.tolist() == expected.tolist(), name
        assert by_name[name].changed == 3
        assert by_name[name].agreement == pytest.approx(9 / 12)
        # Cohen's kappa by hand: p_o = 9/12. Pneumonia, Edema: each side has 9 blanks and 3 of another class (not
        # the same one), so p_e = (9/12)^2 and kappa = (p_o - p_e) / (1 - p_e) = 3/7. Fracture, Lung Opacity: one
        # side is all blank, so p_e = 9/12 = p_o and kappa = 0.
        p_e = (9 / 12) ** 2 if name in ("Pneumonia", "Edema") else 9 / 12
        assert by_name[name].kappa == pytest.approx((9 / 12 - p_e) / (1 - p_e))
    for name, d in by_name.items():
        if name not in HAND:
            assert d.changed == 0 and d.agreement == 1.0, name
    assert result.changed_reports == 9 and len(result.changed) == 12
    assert set(result.changed.columns) == {"report_id", "bundle_id", "observation", "live", "candidate"}


def test_cli_writes_ids_only_and_scores_with_evaluate(exports: tuple[Path, Path], tmp_path: Path) -> None:
    live = read_table(exports[0])
    truth = tmp_path / "truth.csv"
    label_csv(live, truth, "accession")  # the live model is the truth here: its F1 must be 1
    out = tmp_path / "diff"
    result = CliRunner().invoke(app, ["audit", "diff", str(exports[0]), str(exports[1]), "--out", str(out),
                                      "--truth", str(truth), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["changed_labels"] == 12 and summary["changed_report_versions"] == 9
    assert summary["mean_weighted_f1"]["live"] == 1.0 and summary["mean_weighted_f1"]["candidate"] < 1.0
    changed = pd.read_csv(out / "changed.csv", dtype=str)
    assert list(changed.columns) == ["report_id", "bundle_id", "observation", "live", "candidate"]
    assert not changed.apply(lambda col: col.str.contains("SYN|MRN", regex=True)).any().any()  # ids only
    transitions = pd.read_csv(out / "transitions.csv")
    assert transitions["count"].sum() == 14 * VERSIONS
    # The numbers are `radlabel evaluate`'s: the same call on the label files the diff wrote gives the same result.
    direct = evaluate(truth, [("live", out / "live.labels.csv"), ("candidate", out / "candidate.labels.csv")],
                      resamples=200)
    written = json.loads((out / "diff.json").read_text())["evaluation"]
    for r in direct.labelers:
        assert written["labelers"][r.name]["mean_weighted_f1"] == pytest.approx(r.mean_weighted_f1, abs=1e-6)
    assert written["comparisons"][0]["wilcoxon_p"] == pytest.approx(direct.comparisons[0].wilcoxon_p, abs=1e-6)
    assert (out / "evaluation" / "table.md").is_file()


def test_exports_of_different_windows_or_with_repeats_are_refused(exports: tuple[Path, Path], tmp_path: Path) -> None:
    live = read_table(exports[0])
    doubled = tmp_path / "doubled.csv"
    pd.concat([live, live]).to_csv(doubled, index=False)
    result = CliRunner().invoke(app, ["audit", "diff", str(exports[0]), str(doubled), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3 and "more than once" in result.output
    other = tmp_path / "other.csv"
    live.assign(bundle_id=live["bundle_id"] + "x").to_csv(other, index=False)
    result = CliRunner().invoke(app, ["audit", "diff", str(exports[0]), str(other), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3 and "share no report version" in result.output
    assert "Traceback" not in result.output and not os.path.exists(tmp_path / "o" / "diff.json")


def test_hostile_or_foreign_files_are_one_line_input_errors(exports: tuple[Path, Path], tmp_path: Path) -> None:
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"bundle_id,observation\n\x00\xff\xfe")
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1 not really parquet")
    for bad, says in ((binary, "not UTF-8"), (damaged, "cannot read it as an audit export")):
        result = CliRunner().invoke(app, ["audit", "diff", str(bad), str(exports[1]), "--out", str(tmp_path / "o")])
        assert result.exit_code == 3, result.output
        assert says in result.output and "Traceback" not in result.output
