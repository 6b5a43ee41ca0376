"""Checks against the shared data (skipped when ../shared is absent; set RADLABEL_SHARED)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from connector.evaluate.io import write_labels
from connector.evaluate.report import evaluate
from connector.rules import label_report
from mappings.vocabulary import OBSERVATIONS


def test_faithful_profile_reproduces_chexpert_sample_outputs(shared_data: Path) -> None:
    """The CheXpert labeler's own four sample reports and its published labels for them."""
    frame = pd.read_csv(shared_data / "chexpert-labeler/labeled_reports.csv", dtype=str, keep_default_na=False)
    for _, row in frame.iterrows():
        expected = [row[o].replace(".0", "") for o in OBSERVATIONS]
        assert label_report(row["Reports"], "chexpert").csv_row() == expected, row["Reports"][:40]


def _label_gold(shared_data: Path, tmp_path: Path, profile: str) -> Path:
    reports = pd.read_csv(shared_data / "gold-dev/reports.csv", dtype=str, keep_default_na=False)
    out = tmp_path / f"{profile}.csv"
    write_labels(out, list(reports["id"]), [label_report(t, profile).csv_row() for t in reports["report"]])
    return out


def test_gold_dev_improved_beats_faithful(shared_data: Path, tmp_path: Path) -> None:
    """4-class gold-dev, weighted mode: the improved profile is measurably better than the faithful one, and
    stays above the level the rule labeler is relied on for (silver labels, fallback)."""
    preds = {p: _label_gold(shared_data, tmp_path, p) for p in ("improved", "chexpert")}
    result = evaluate(shared_data / "gold-dev/labels.csv", preds, mode="weighted", resamples=200)
    improved, faithful = result.labelers
    assert improved.mean_weighted_f1 >= 0.90
    assert improved.mean_weighted_f1 - faithful.mean_weighted_f1 >= 0.05
    assert result.comparisons[0].bootstrap_p < 0.05
