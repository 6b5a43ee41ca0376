"""Regenerate the rule-labeler evaluation in docs/EVALUATION.md.

    RADLABEL_SHARED=/work/shared PYTHONPATH=. python benchmarks/eval_rules.py --out out/eval

1. Builds, OUTSIDE the repository tree that is committed (default out/eval, git-ignored), the inputs:
   - gold-dev: reports.csv (id, report) and truth labels.csv (4-class) straight from shared/data/gold-dev;
   - IU X-ray train+val: report text (INDICATION / COMPARISON / FINDINGS / IMPRESSION with headers, the same
     layout as gold-dev) and the MeSH positive-only truth (id = report_id; reports whose MeSH status is
     "no_indexing" carry no coding and are left out);
   - CheXbert's published outputs (chexbert_labels_binarized.csv, findings section, 1 = positive or uncertain)
     collapsed per report (any image positive -> positive).
2. Labels every report with the rule labeler in both profiles (chexpert-faithful and improved).
3. Runs ``radlabel evaluate`` (the same code path) for gold-dev in weighted mode and IU in positive-only mode.

Licensed report text never enters the repository: everything written goes under --out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.evaluate.io import write_labels  # noqa: E402
from connector.rules.labeler import label_report  # noqa: E402
from mappings.vocabulary import OBSERVATIONS  # noqa: E402

SECTIONS = (("indication", "INDICATION"), ("comparison", "COMPARISON"), ("findings", "FINDINGS"), ("impression", "IMPRESSION"))


def shared_dir() -> Path:
    return Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))


def iu_report_text(row: pd.Series) -> str:
    """The IU report as one text with section headers (same layout as gold-dev reports)."""
    parts = []
    for column, header in SECTIONS:
        value = row.get(column)
        if isinstance(value, str) and value.strip():
            parts.append(f"{header}: {value.strip()}")
    return "\n".join(parts)


def build_inputs(shared: Path, out: Path) -> dict[str, Path]:
    data = out / "data"
    data.mkdir(parents=True, exist_ok=True)
    paths = {}
    gold = pd.read_csv(shared / "data/gold-dev/reports.csv", dtype=str)
    gold[["id", "report"]].to_csv(data / "gold_dev_reports.csv", index=False)
    paths["gold_reports"] = data / "gold_dev_reports.csv"
    paths["gold_truth"] = shared / "data/gold-dev/labels.csv"

    reports = pd.read_csv(shared / "data/iu-xray/reports.csv", dtype=str)
    reports = reports[reports["split"].isin(["train", "val"])]
    mesh = pd.read_csv(shared / "data/iu-xray/mesh_labels.csv", dtype=str, keep_default_na=False)
    mesh = mesh[mesh["mesh_status"] != "no_indexing"]
    reports = reports[reports["report_id"].isin(set(mesh["report_id"]))]
    pd.DataFrame({"id": reports["report_id"], "report": reports.apply(iu_report_text, axis=1)}).to_csv(
        data / "iu_trainval_reports.csv", index=False
    )
    paths["iu_reports"] = data / "iu_trainval_reports.csv"
    truth = mesh[mesh["report_id"].isin(set(reports["report_id"]))]
    truth = truth[["report_id", *OBSERVATIONS]].rename(columns={"report_id": "id"})
    truth.to_csv(data / "iu_mesh_truth.csv", index=False)
    paths["iu_truth"] = data / "iu_mesh_truth.csv"

    chexbert = pd.read_csv(shared / "data/iu-xray/chexbert_labels_binarized.csv")
    per_report = chexbert.groupby("report_id")[list(OBSERVATIONS)].max()
    per_report = per_report.loc[per_report.index.isin(set(truth["id"]))]
    cells = per_report.map(lambda v: "1" if v == 1 else "")
    write_labels(data / "iu_chexbert_pred.csv", list(per_report.index), cells.to_numpy().tolist())
    paths["iu_chexbert"] = data / "iu_chexbert_pred.csv"
    return paths


def label_file(reports_csv: Path, profile: str, out_csv: Path) -> float:
    """Label every report of a CSV (id, report) with one profile; returns reports/s."""
    frame = pd.read_csv(reports_csv, dtype=str, keep_default_na=False)
    start = time.perf_counter()
    rows = [label_report(text, profile).csv_row() for text in frame["report"]]
    elapsed = time.perf_counter() - start
    write_labels(out_csv, list(frame["id"]), rows)
    return len(rows) / elapsed if elapsed else float("inf")


def run_evaluate(truth: Path, preds: list[tuple[str, Path]], out: Path, mode: str) -> None:
    cmd = [sys.executable, "-m", "connector.cli", "evaluate", "--truth", str(truth), "--out", str(out), "--mode", mode]
    for name, path in preds:
        cmd += ["--pred", f"{name}={path}"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=REPO / "out" / "eval")
    args = parser.parse_args()
    out: Path = args.out
    paths = build_inputs(shared_dir(), out)
    preds = out / "pred"
    preds.mkdir(parents=True, exist_ok=True)
    for dataset in ("gold", "iu"):
        for profile in ("chexpert", "improved"):
            target = preds / f"{dataset}_rules_{profile}.csv"
            rate = label_file(paths[f"{dataset}_reports"], profile, target)
            print(f"labeled {dataset} with {profile}: {rate:,.0f} reports/s -> {target}")
    run_evaluate(
        paths["gold_truth"],
        [("rules-improved", preds / "gold_rules_improved.csv"), ("rules-chexpert", preds / "gold_rules_chexpert.csv")],
        out / "gold_dev_weighted",
        "weighted",
    )
    run_evaluate(
        paths["iu_truth"],
        [
            ("rules-improved", preds / "iu_rules_improved.csv"),
            ("rules-chexpert", preds / "iu_rules_chexpert.csv"),
            ("chexbert-published", paths["iu_chexbert"]),
        ],
        out / "iu_mesh_positive_only",
        "positive-only",
    )


if __name__ == "__main__":
    main()
