"""Draw the annotation sample from the IU X-ray train split and assign each report to `dev` or `lockbox`.

Why enriched: a random sample of 500 IU reports holds only a handful of positives for the rare observations
(Pleural Other, Lung Lesion, Fracture, Support Devices, Pneumonia), too few to steer or measure rules or a model.
Reports whose human MeSH codes (strong or weak rows of mesh_to_chexpert14_map.csv) name one of those observations
are drawn first, up to a quota each (then a few by text, TEXT_ENRICH); a random share of the remaining train reports keeps prevalence estimates
meaningful (the `stratum` column says which draw a report came from, so prevalence can be computed on the random
stratum alone). Never gold-dev uids (read while tuning), never val/unsplit reports, never empty reports.

The split is by a salted hash of the uid inside each stratum, so it is reproducible, independent of row order, and
both parts carry the same mix. Deterministic: the same inputs give the same sample.csv byte for byte.

    python -m training.annotation.sample --shared ../shared --out training/annotation/data/sample.csv
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
from pathlib import Path

RARE_QUOTAS = {  # observation -> how many MeSH-positive reports to draw (all of them when fewer exist)
    "Pleural Other": 40,
    "Pneumonia": 40,
    "Fracture": 45,
    "Lung Lesion": 45,
    "Support Devices": 45,
}
RANDOM_SHARE = 310
# Pleural Other is rare even among MeSH codes (36 train reports in all): reports whose text names a pleural
# thickening/scar/plaque/cap are added after the random draw (so the draws above stay as they were) to reach
# >= 30 mentions.
TEXT_ENRICH = {
    "Pleural Other": re.compile(
        r"pleural (thicken|scar|plaque|calcif)|apical (pleural )?(cap|thicken|scar)|pleuroparenchymal|fibrothorax",
        re.I),
}
LOCKBOX_FRACTION = 0.45
SEED = 20261202
SPLIT_SALT = "radlabel-lockbox-v1"


def _lockbox(uid: str, fraction: float) -> bool:
    digest = hashlib.sha256(f"{SPLIT_SALT}|{uid}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def draw(shared: Path) -> list[dict[str, str]]:
    data = shared / "data"
    reports = {r["uid"]: r for r in csv.DictReader(open(data / "iu-xray" / "reports.csv", newline=""))}
    gold = {r["uid"] for r in csv.DictReader(open(data / "gold-dev" / "reports.csv", newline=""))}
    mesh = {r["uid"]: r for r in csv.DictReader(open(data / "iu-xray" / "mesh_labels.csv", newline=""))}
    eligible = sorted(
        (uid for uid, r in reports.items()
         if r["split"] == "train" and uid not in gold and (r["findings"].strip() or r["impression"].strip())),
        key=int,
    )
    rng = random.Random(SEED)
    chosen: dict[str, str] = {}
    for observation, quota in RARE_QUOTAS.items():
        pool = [u for u in eligible if u not in chosen and u in mesh
                and (mesh[u][observation] or mesh[u][f"weak+{observation}"])]
        for uid in rng.sample(pool, min(quota, len(pool))):
            chosen[uid] = f"mesh:{observation}"
    rest = [u for u in eligible if u not in chosen]
    for uid in rng.sample(rest, RANDOM_SHARE):
        chosen[uid] = "random"
    for observation, pattern in TEXT_ENRICH.items():
        for uid in eligible:
            text = reports[uid]["findings"] + " " + reports[uid]["impression"]
            if uid not in chosen and pattern.search(text):
                chosen[uid] = f"text:{observation}"
    rows = []
    for uid in sorted(chosen, key=int):
        split = "lockbox" if _lockbox(uid, LOCKBOX_FRACTION) else "dev"
        rows.append({"uid": uid, "report_id": reports[uid]["report_id"], "stratum": chosen[uid], "split": split})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared"))
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "data" / "sample.csv")
    args = parser.parse_args()
    rows = draw(args.shared)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["uid", "report_id", "stratum", "split"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    n_lock = sum(r["split"] == "lockbox" for r in rows)
    print(f"{len(rows)} reports: dev {len(rows) - n_lock}, lockbox {n_lock} -> {args.out}")


if __name__ == "__main__":
    main()
