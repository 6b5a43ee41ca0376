"""radlabel evaluate end to end on small written fixtures: files, numbers, figures, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from connector.cli import app
from connector.evaluate.io import LabelFileError, read_labels
from mappings.vocabulary import OBSERVATIONS

HEADER = "id," + ",".join(OBSERVATIONS)


def _csv(path: Path, rows: dict[str, dict[str, str]]) -> Path:
    lines = [HEADER]
    for rid, cells in rows.items():
        lines.append(rid + "," + ",".join(cells.get(o, "") for o in OBSERVATIONS))
    path.write_text("\n".join(lines) + "\n")
    return path


# Cardiomegaly column = the hand-computed case of test_metrics (weighted F1 0.4); Pneumothorax all-negative.
CARDIO_T = ["1", "1", "0", "-1", "", "0"]
CARDIO_P = ["1", "0", "0", "", "1", "-1"]


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    ids = [f"r{i}" for i in range(6)]
    truth = {i: {"Cardiomegaly": c, "Pneumothorax": "0"} for i, c in zip(ids, CARDIO_T, strict=True)}
    good = {i: {"Cardiomegaly": c, "Pneumothorax": "0"} for i, c in zip(ids, CARDIO_T, strict=True)}
    worse = {i: {"Cardiomegaly": c, "Pneumothorax": "0"} for i, c in zip(reversed(ids), CARDIO_P[::-1], strict=True)}
    worse["extra-id"] = {"Cardiomegaly": "1"}  # ids outside the truth are ignored
    return {
        "truth": _csv(tmp_path / "truth.csv", truth),
        "good": _csv(tmp_path / "good.csv", good),
        "worse": _csv(tmp_path / "worse.csv", worse),
        "short": _csv(tmp_path / "short.csv", {i: {} for i in ids[:4]}),
    }


def test_evaluate_writes_all_outputs_with_right_numbers(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--truth",
            str(files["truth"]),
            "--pred",
            f"perfect={files['good']}",
            "--pred",
            f"other={files['worse']}",
            "--out",
            str(out),
            "--bootstrap",
            "200",
        ],
    )
    assert result.exit_code == 0, result.output
    for name in ("metrics.json", "table.md", "table.csv", "f1_bars.png", "f1_diff_heatmap.png"):
        assert (out / name).is_file(), name
    for png in ("f1_bars.png", "f1_diff_heatmap.png"):
        data = (out / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000
    metrics = json.loads((out / "metrics.json").read_text())
    perfect, other = metrics["labelers"]["perfect"], metrics["labelers"]["other"]
    assert perfect["mean_weighted_f1"] == 1.0
    assert other["observations"]["Cardiomegaly"]["weighted_f1"] == pytest.approx(0.4)
    assert other["observations"]["Cardiomegaly"]["weighted_f1_pos_neg"] == pytest.approx(0.5)
    # Only Cardiomegaly and Pneumothorax are in the truth: mean of 0.4 and 1.0.
    assert other["mean_weighted_f1"] == pytest.approx(0.7)
    assert other["observations"]["Edema"]["weighted_f1"] is None
    lo, hi = other["mean_weighted_f1_ci95"]
    assert lo <= hi
    # Per-observation CIs from the same resamples: a perfect labeler's is [1, 1]; an imperfect one's brackets its
    # point estimate; an observation absent from the truth has none.
    assert perfect["observations"]["Cardiomegaly"]["weighted_f1_ci95"] == [1.0, 1.0]
    c_lo, c_hi = other["observations"]["Cardiomegaly"]["weighted_f1_ci95"]
    assert 0.0 <= c_lo <= 0.4 <= c_hi <= 1.0 and c_lo < c_hi
    assert other["observations"]["Edema"]["weighted_f1_ci95"] == [None, None]
    (pair,) = metrics["comparisons"]
    assert (pair["a"], pair["b"]) == ("perfect", "other")
    assert pair["mean_difference"] == pytest.approx(0.3)
    table = (out / "table.md").read_text()
    assert "| Cardiomegaly | 1.0000 | 0.4000 |" in table
    assert "perfect | other" in table
    csv_text = (out / "table.csv").read_text()
    assert "other,Mean,,,,0.700000" in csv_text


def test_missing_prediction_ids_are_named(files: dict[str, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["evaluate", "--truth", str(files["truth"]), "--pred", f"short={files['short']}", "--out", str(tmp_path / "o")],
    )
    assert result.exit_code == 3  # input rejected (README "Exit codes")
    assert "r4" in result.output and "r5" in result.output and "short" in result.output
    assert not (tmp_path / "o").exists()


def test_positive_only_mode(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "pos"
    result = CliRunner().invoke(
        app,
        [
            "evaluate",
            "--truth",
            str(files["truth"]),
            "--pred",
            f"other={files['worse']}",
            "--out",
            str(out),
            "--mode",
            "positive-only",
            "--bootstrap",
            "100",
        ],
    )
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    cardio = metrics["labelers"]["other"]["observations"]["Cardiomegaly"]
    # truth positives (1/-1): r0 r1 r3; pred positives (1/-1): r0 r4 r5 -> tp1 fp2 fn2
    assert cardio["f1_positive"] == pytest.approx(2 / (2 + 2 + 2))
    assert cardio["weighted_f1"] == pytest.approx(1 / 3)
    # Pneumothorax has no positive in the truth: undefined in positive-only mode.
    assert metrics["labelers"]["other"]["observations"]["Pneumothorax"]["weighted_f1"] is None


def test_bad_inputs_are_typed_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(HEADER + "\nx," + ",".join(["2"] + [""] * 13) + "\n")
    with pytest.raises(LabelFileError, match="row 2"):
        read_labels(bad)
    dup = tmp_path / "dup.csv"
    dup.write_text(HEADER + "\nx" + "," * 14 + "\nx" + "," * 14 + "\n")
    with pytest.raises(LabelFileError, match="duplicate id"):
        read_labels(dup)
    nocol = tmp_path / "nocol.csv"
    nocol.write_text("id,Cardiomegaly\nx,1\n")
    with pytest.raises(LabelFileError, match="missing column"):
        read_labels(nocol)
