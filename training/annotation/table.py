"""The human labels of one split as a training table for `radlabel train --table` (id, report, 14 columns), with
the rare observations oversampled.

Why oversample: positives of Pleural Other, Lung Lesion, Fracture, Pneumonia, Support Devices are a few dozen in
the dev part; repeating the reports that assert them (positive or uncertain) gives the model more gradient on the
classes the rules are weakest on. Repeats share their text, so `training.data.split` (by a hash of the text) keeps
them on one side of the train/validation split.

    python -m training.annotation.table --split dev --oversample 3 --out out/annotated/dev_table.csv

The lock-box is refused: it is never trained on. Text comes from ../shared (RADLABEL_SHARED) into --out only.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pandas as pd

from training.data import iu_report_text

DATA = Path(__file__).parent / "data"
RARE = ("Pleural Other", "Lung Lesion", "Fracture", "Pneumonia", "Support Devices")


def build(shared: Path, split: str = "dev", oversample: int = 1) -> pd.DataFrame:
    if split != "dev":
        raise ValueError("only the dev part may be trained on; the lock-box never is")
    sample = pd.read_csv(DATA / "sample.csv", dtype=str)
    uids = set(sample.loc[sample["split"] == split, "uid"])
    reports = pd.read_csv(shared / "data/iu-xray/reports.csv", dtype=str, keep_default_na=False)
    reports = reports[reports["uid"].isin(uids)]
    text = dict(zip(reports["uid"], reports.apply(iu_report_text, axis=1)))
    truth = pd.read_csv(DATA / "adjudicated.csv", dtype=str, keep_default_na=False)
    truth = truth[truth["id"].isin(uids)].copy()
    truth.insert(1, "report", truth["id"].map(text))
    rare = truth[list(RARE)].isin(["1", "-1"]).any(axis=1)
    copies = [truth.assign(id="human-" + truth["id"])]
    for k in range(1, oversample):
        extra = truth[rare]
        copies.append(extra.assign(id="human-" + extra["id"] + f"#{k}"))
    return pd.concat(copies, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", default="dev")
    parser.add_argument("--oversample", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    shared = Path(os.environ.get("RADLABEL_SHARED", Path(__file__).resolve().parents[2].parent / "shared"))
    table = build(shared, args.split, args.oversample)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    print(f"{len(table)} rows ({table['id'].str.contains('#').sum()} oversampled copies) -> {args.out}")


if __name__ == "__main__":
    main()
