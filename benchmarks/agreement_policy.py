"""Combine a model labeler's and the rule labeler's labels under an agreement policy (issue 16: "an ensemble or
agreement policy is in scope if the numbers support it"), so that `radlabel evaluate` can score the policy beside
its two parts.

    python benchmarks/agreement_policy.py --rules rules.csv --llm llm.csv --out-dir out/policy \
        [--choose-from dev/eval/metrics.json --rules-name rules-improved --llm-name llm]

Policies (one label CSV each, same layout as `radlabel label`):
  agree  publish a cell only where both labelers give the same class; a disagreement is left blank (in a connector
         it would go to review instead of the record). Blank on both sides stays blank.
  pick   per observation, the labels of the labeler with the higher weighted F1 in --choose-from (a dev-split
         evaluation: choosing on the split being scored would be tuning on it); ties go to the rules.
Prints per observation how many cells the two disagree on (what `agree` would send to review).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pandas as pd

from mappings.vocabulary import OBSERVATIONS


def read_labels(path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("id")
    except (OSError, ValueError, KeyError) as exc:  # missing file, not CSV, no id column: one line, exit 1
        raise SystemExit(f"{path}: cannot read a label file ({type(exc).__name__}); write it with `radlabel label`")
    missing = [name for name in OBSERVATIONS if name not in frame.columns]
    if missing:
        raise SystemExit(f"{path}: not a label file (missing columns {missing}); write it with `radlabel label`")
    return frame[list(OBSERVATIONS)]


def common(rules: pd.DataFrame, llm: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    # A report the model failed on is absent from its file; the policies are defined where both answered.
    ids = rules.index.intersection(llm.index)
    return rules.loc[ids], llm.loc[ids]


def agree(rules: pd.DataFrame, llm: pd.DataFrame) -> pd.DataFrame:
    rules, llm = common(rules, llm)
    return rules.where(rules == llm, "")


def pick(rules: pd.DataFrame, llm: pd.DataFrame, use_llm: set[str]) -> pd.DataFrame:
    rules, llm = common(rules, llm)
    out = rules.copy()
    for name in use_llm:
        out[name] = llm[name]
    return out


def better_on_dev(metrics_json: Path, rules_name: str, llm_name: str) -> set[str]:
    """Observations where the model's dev weighted F1 beats the rules' (strictly)."""
    labelers = json.loads(metrics_json.read_text())["labelers"]
    for name in (rules_name, llm_name):
        if name not in labelers:
            raise SystemExit(f"{metrics_json}: no labeler {name!r} (has {sorted(labelers)})")
    r, m = labelers[rules_name]["observations"], labelers[llm_name]["observations"]
    return {name for name in OBSERVATIONS
            if (m[name]["weighted_f1"] or 0.0) > (r[name]["weighted_f1"] or 0.0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=Path, required=True)
    ap.add_argument("--llm", type=Path, required=True)
    ap.add_argument("--out-dir", type=Path, required=True)
    ap.add_argument("--choose-from", type=Path, help="dev-split metrics.json of `radlabel evaluate` (for `pick`)")
    ap.add_argument("--rules-name", default="rules-improved")
    ap.add_argument("--llm-name", default="llm")
    args = ap.parse_args()
    rules, llm = read_labels(args.rules), read_labels(args.llm)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    agree(rules, llm).reset_index().to_csv(args.out_dir / "agree.csv", index=False)
    written = ["agree.csv"]
    if args.choose_from:
        use_llm = better_on_dev(args.choose_from, args.rules_name, args.llm_name)
        pick(rules, llm, use_llm).reset_index().to_csv(args.out_dir / "pick.csv", index=False)
        written.append("pick.csv")
        print(f"pick: model labels for {sorted(use_llm) or 'no observation'}; rules elsewhere")
    r, m = common(rules, llm)
    print(f"{len(r)} reports labeled by both; wrote {', '.join(written)} to {args.out_dir}\n")
    print("| Observation | cells where the labelers disagree (would go to review under `agree`) |")
    print("|---|---|")
    for name in OBSERVATIONS:
        print(f"| {name} | {int((r[name] != m[name]).sum())} |")
    print(f"| **reports with any disagreement** | {int((r != m).any(axis=1).sum())} of {len(r)} |")


if __name__ == "__main__":
    main()
