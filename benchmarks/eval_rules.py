"""Regenerate the rule-labeler evaluation in docs/EVALUATION.md.

    RADLABEL_SHARED=/work/shared PYTHONPATH=. python benchmarks/eval_rules.py --out out/eval

1. Builds, OUTSIDE the repository tree that is committed (default out/eval, git-ignored), the inputs:
   - gold-dev: reports.csv (id, report) and truth labels.csv (4-class) straight from shared/data/gold-dev;
   - IU X-ray train+val minus the annotated set's lock-box: report text (INDICATION / COMPARISON / FINDINGS / IMPRESSION with headers, the same
     layout as gold-dev) and the MeSH positive-only truth (id = report_id; reports whose MeSH status is
     "no_indexing" carry no coding and are left out);
   - CheXbert's published outputs (chexbert_labels_binarized.csv, findings section, 1 = positive or uncertain)
     collapsed per report (any image positive -> positive).
2. Labels every report with ``radlabel label --labeler rules`` in both profiles (chexpert-faithful and improved,
   chosen with RADLABEL_LABELER__RULES_PROFILE).
3. Runs ``radlabel evaluate`` (the same code path) for gold-dev in weighted mode and IU in positive-only mode.

Licensed report text never enters the repository: everything written goes under --out.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.evaluate.io import write_labels  # noqa: E402
from mappings.vocabulary import OBSERVATIONS  # noqa: E402
from training.data import iu_report_text, lockbox_uids  # noqa: E402  (one IU report layout for training and evaluation)


def shared_dir() -> Path:
    return Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))


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
    # The annotated set's lock-box is scored only when a release is cut (benchmarks/eval_annotated.py): keep its
    # reports out of this routinely-run MeSH evaluation, or every tuning session would see scores on them.
    reports = reports[~reports["uid"].isin(lockbox_uids())]
    mesh = pd.read_csv(shared / "data/iu-xray/mesh_labels.csv", dtype=str, keep_default_na=False)
    mesh = mesh[mesh["mesh_status"] != "no_indexing"]
    reports = reports[reports["report_id"].isin(set(mesh["report_id"]))]
    pd.DataFrame({"id": reports["report_id"], "report": reports.apply(iu_report_text, axis=1)}).to_csv(
        data / "iu_trainval_reports.csv", index=False
    )
    paths["iu_reports"] = data / "iu_trainval_reports.csv"
    # CheXbert's published outputs saw only the FINDINGS section: label that alone too, for a like-for-like row.
    findings = reports["findings"].fillna("").map(lambda t: f"FINDINGS: {t.strip()}" if t.strip() else "")
    pd.DataFrame({"id": reports["report_id"], "report": findings}).to_csv(data / "iu_findings_reports.csv", index=False)
    paths["iu_findings_reports"] = data / "iu_findings_reports.csv"
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


def label_file(reports_csv: Path, profile: str, out_csv: Path) -> None:
    """``radlabel label --labeler rules`` with the profile chosen through settings (RADLABEL_LABELER__RULES_PROFILE)."""
    cmd = [sys.executable, "-m", "connector.cli", "label", "--input", str(reports_csv), "--output", str(out_csv)]
    cmd += ["--labeler", "rules"]
    env = dict(os.environ, PYTHONPATH=str(REPO), RADLABEL_LABELER__RULES_PROFILE=profile)
    print("$ RADLABEL_LABELER__RULES_PROFILE=" + profile, " ".join(["radlabel", *cmd[3:]]))
    subprocess.run(cmd, check=True, cwd=REPO, env=env)


def run_evaluate(truth: Path, preds: list[tuple[str, Path]], out: Path, mode: str) -> None:
    cmd = [sys.executable, "-m", "connector.cli", "evaluate", "--truth", str(truth), "--out", str(out), "--mode", mode]
    for name, path in preds:
        cmd += ["--pred", f"{name}={path}"]
    env = dict(os.environ, PYTHONPATH=str(REPO))
    print("$", " ".join(["radlabel", *cmd[3:]]))
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
            label_file(paths[f"{dataset}_reports"], profile, target)
    label_file(paths["iu_findings_reports"], "improved", preds / "iu_findings_rules_improved.csv")
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
            ("rules-improved-findings-only", preds / "iu_findings_rules_improved.csv"),
        ],
        out / "iu_mesh_positive_only",
        "positive-only",
    )


if __name__ == "__main__":
    main()
