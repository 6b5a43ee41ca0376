"""Agreement of the two annotators and the human ceiling, computed with the evaluation toolkit (no second metrics
implementation): Cohen's kappa between annotator A and B per observation on the 4 classes (blank, negative,
uncertain, positive), raw agreement, and each annotator's CheXbert-protocol weighted F1 against the adjudicated
labels (the ceiling a labeler can be expected to reach on this set).

    python -m training.annotation.agree [--split dev|lockbox|all]   # prints a markdown table
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import cohen_kappa_score

from connector.evaluate.io import read_labels
from connector.evaluate.metrics import mean_weighted_f1, score_labeler
from mappings.vocabulary import OBSERVATIONS

DATA = Path(__file__).parent / "data"
_BLANK = 9.0  # kappa class for a blank cell (NaN cannot be a label)


def load(name: str, split: str = "all") -> pd.DataFrame:
    frame = read_labels(DATA / f"{name}.csv")
    if split == "all":
        return frame
    sample = pd.read_csv(DATA / "sample.csv", dtype=str)
    keep = set(sample.loc[sample["split"] == split, "uid"])
    return frame.loc[[i for i in frame.index if i in keep]]


def agreement(split: str = "all") -> pd.DataFrame:
    a, b, truth = load("annotator_a", split), load("annotator_b", split), load("adjudicated", split)
    b, truth = b.loc[a.index], truth.loc[a.index]
    fa = score_labeler(truth.to_numpy(), a.to_numpy(), "weighted")
    fb = score_labeler(truth.to_numpy(), b.to_numpy(), "weighted")
    rows = []
    for j, name in enumerate(OBSERVATIONS):
        x = np.nan_to_num(a.iloc[:, j].to_numpy(), nan=_BLANK)
        y = np.nan_to_num(b.iloc[:, j].to_numpy(), nan=_BLANK)
        same = bool((x == y).all())
        rows.append({
            "observation": name,
            "mentions (adjudicated)": int(truth.iloc[:, j].notna().sum()),
            "positive": int((truth.iloc[:, j] == 1).sum()),
            "agreement": float((x == y).mean()),
            # kappa is undefined when both annotators used a single class: perfect agreement, reported as 1.
            "kappa A-B": 1.0 if same else float(cohen_kappa_score(x, y)),
            "F1 A vs adjudicated": fa[name].weighted_f1,
            "F1 B vs adjudicated": fb[name].weighted_f1,
        })
    table = pd.DataFrame(rows)
    table.loc[len(table)] = {
        "observation": "mean (14)", "mentions (adjudicated)": int(table["mentions (adjudicated)"].sum()),
        "positive": int(table["positive"].sum()), "agreement": table["agreement"].mean(),
        "kappa A-B": table["kappa A-B"].mean(), "F1 A vs adjudicated": mean_weighted_f1(fa),
        "F1 B vs adjudicated": mean_weighted_f1(fb),
    }
    return table


def markdown(table: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.3f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=["dev", "lockbox", "all"], default="all")
    args = parser.parse_args()
    table = agreement(args.split)
    print(f"split: {args.split}, reports: {len(load('adjudicated', args.split))}")
    print(markdown(table))


if __name__ == "__main__":
    main()
