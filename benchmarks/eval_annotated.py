"""Score the rule labeler (both profiles, and any extra label files) on the human-annotated IU set
(training/annotation: 519 reports, two annotators + adjudication) with `radlabel evaluate`.

    RADLABEL_SHARED=/work/shared PYTHONPATH=. python benchmarks/eval_annotated.py --split dev
    PYTHONPATH=. python benchmarks/eval_annotated.py --split lockbox --release   # only when cutting a release

The lock-box part is read by nobody while rules or training settings change: the script refuses to score it
without --release, and each release scoring is recorded in docs/EVALUATION.md with the commit it scored (the
script prints the commit and a ready-to-paste row). Inputs are built under --out (git-ignored): report text comes
from ../shared and never enters the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.eval_rules import label_file, run_evaluate, shared_dir  # noqa: E402
from training.data import iu_report_text  # noqa: E402

ANNOTATION = REPO / "training" / "annotation" / "data"


def build_inputs(shared: Path, split: str, out: Path) -> tuple[Path, Path]:
    """reports.csv (id = IU uid, report) and truth.csv (adjudicated labels) of one split."""
    sample = pd.read_csv(ANNOTATION / "sample.csv", dtype=str)
    uids = set(sample.loc[sample["split"] == split, "uid"])
    reports = pd.read_csv(shared / "data/iu-xray/reports.csv", dtype=str, keep_default_na=False)
    reports = reports[reports["uid"].isin(uids)]
    out.mkdir(parents=True, exist_ok=True)
    reports_csv = out / "reports.csv"
    pd.DataFrame({"id": reports["uid"], "report": reports.apply(iu_report_text, axis=1)}).to_csv(reports_csv, index=False)
    truth = pd.read_csv(ANNOTATION / "adjudicated.csv", dtype=str, keep_default_na=False)
    truth_csv = out / "truth.csv"
    truth[truth["id"].isin(uids)].to_csv(truth_csv, index=False)
    return reports_csv, truth_csv


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=["dev", "lockbox"], required=True)
    parser.add_argument("--release", action="store_true", help="allow scoring the lock-box (a release is cut)")
    parser.add_argument("--pred", action="append", default=[], metavar="NAME=CSV",
                        help="extra label file to score beside the rules (e.g. an LLM's `radlabel label` output)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "annotated")
    args = parser.parse_args()
    if args.split == "lockbox" and not args.release:
        parser.error("the lock-box is scored only when a release is cut: add --release, and record the result "
                     "in docs/EVALUATION.md with the commit")
    out = args.out / args.split
    reports_csv, truth_csv = build_inputs(shared_dir(), args.split, out / "data")
    preds = out / "pred"
    preds.mkdir(parents=True, exist_ok=True)
    pairs = []
    for profile in ("improved", "chexpert"):
        target = preds / f"rules_{profile}.csv"
        label_file(reports_csv, profile, target)
        pairs.append((f"rules-{profile}", target))
    for item in args.pred:
        name, _, path = item.partition("=")
        pairs.append((name, Path(path)))
    run_evaluate(truth_csv, pairs, out / "eval", "weighted")
    summary = json.loads((out / "eval" / "metrics.json").read_text())
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--", "connector", "mappings", "training"],
                                cwd=REPO, capture_output=True, text=True).stdout.strip())
    print(f"\n{args.split}: {summary['n_reports']} reports, commit {commit}{' (+uncommitted changes)' if dirty else ''}")
    for name, item in summary["labelers"].items():
        lo, hi = item["mean_weighted_f1_ci95"]
        print(f"| {name} | {item['mean_weighted_f1']:.3f} [{lo:.3f}-{hi:.3f}] |")


if __name__ == "__main__":
    os.environ.setdefault("RADLABEL_SHARED", str(REPO.parent / "shared"))
    main()
