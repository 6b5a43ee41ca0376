"""Would MeSH-informed label repair make better silver labels? Measured on the teacher, before any training.

    RADLABEL_SHARED=../shared PYTHONPATH=. python benchmarks/silver_repair.py --out out/silver_repair

The LLM is trained on rule-labeler ("silver") labels of IU X-ray reports. IU reports also carry human MeSH
indexing (positive findings only), mapped to the 14 observations in shared/data/iu-xray/mesh_labels.csv. A
repair policy overwrites rule labels where MeSH disagrees. Training on repaired labels only pays if the repaired
labels are closer to the labeling guidelines, which gold-dev (100 IU reports, human 4-class labels) measures:
every gold-dev report has an IU uid, so each policy is applied to the rule labels of the gold-dev reports and
scored with the same `evaluate` code as everything else. The script also counts how many training labels
(IU reports outside gold-dev) each policy would change.

Policies (MeSH "strong" mapping unless said; MeSH never says negative, so no policy can add a negative):
- blank:          rule blank -> MeSH class
- blank+neg:      also rule negative -> MeSH class (MeSH says the finding is there)
- blank+neg+unc:  also rule uncertain -> positive where MeSH says positive
- blank+weak:     blank -> MeSH class, using the weak mapping rows too
- blank+nf:       blank -> MeSH class, and No Finding positive where MeSH says "normal" and the rules found nothing,
                  dropped where a finding is positive or uncertain (CheXpert's No Finding rule)

Writes prediction CSVs under --out (report text never leaves shared/); prints a markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.evaluate.io import write_labels  # noqa: E402
from connector.evaluate.report import evaluate  # noqa: E402
from connector.rules.labeler import RuleLabeler  # noqa: E402
from mappings.vocabulary import (  # noqa: E402
    NO_FINDING,
    OBSERVATIONS,
    SUPPORT_DEVICES,
    Certainty,
    decode_csv_value,
    encode_csv_value,
)
from training.data import iu_report_text  # noqa: E402

POLICIES: dict[str, frozenset[str]] = {
    "rules (no repair)": frozenset(),
    "blank": frozenset({"blank"}),
    "blank+neg": frozenset({"blank", "neg"}),
    "blank+neg+unc": frozenset({"blank", "neg", "unc"}),
    "blank+weak": frozenset({"blank", "weak"}),
    "blank+nf": frozenset({"blank", "nofinding"}),
}
FINDINGS = [o for o in OBSERVATIONS if o not in (NO_FINDING, SUPPORT_DEVICES)]


def repair(labels: Mapping[str, Certainty], mesh: Mapping[str, str], policy: frozenset[str]) -> dict[str, Certainty]:
    """One report's rule labels after a repair policy (pure; ``mesh`` is one mesh_labels.csv row)."""
    out = dict(labels)
    for name in OBSERVATIONS:
        raw = mesh.get(name, "") or (mesh.get(f"weak+{name}", "") if "weak" in policy else "")
        value = decode_csv_value(raw)
        if value is None or name == NO_FINDING:
            continue
        current = out.get(name)
        if (current is None and "blank" in policy) or (current is Certainty.NEGATIVE and "neg" in policy) or (
            current is Certainty.UNCERTAIN and value is Certainty.POSITIVE and "unc" in policy
        ):
            out[name] = value
    if "nofinding" in policy:
        found = any(out.get(f) in (Certainty.POSITIVE, Certainty.UNCERTAIN) for f in FINDINGS)
        if found:
            out.pop(NO_FINDING, None)
        elif mesh.get("mesh_status") == "normal" and NO_FINDING not in out:
            out[NO_FINDING] = Certainty.POSITIVE
    return out


def label(reports: list[str]) -> list[dict[str, Certainty]]:
    sets = asyncio.run(RuleLabeler().label_batch(reports))
    return [dict(s.labels) for s in sets]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=Path("out/silver_repair"))
    ap.add_argument("--resamples", type=int, default=1000)
    args = ap.parse_args()
    shared = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared")) / "data"
    args.out.mkdir(parents=True, exist_ok=True)

    mesh = pd.read_csv(shared / "iu-xray/mesh_labels.csv", dtype=str, keep_default_na=False).set_index("uid")
    gold = pd.read_csv(shared / "gold-dev/reports.csv", dtype=str, keep_default_na=False)
    gold_rules = label(list(gold["report"]))
    iu = pd.read_csv(shared / "iu-xray/reports.csv", dtype=str, keep_default_na=False)
    iu = iu[~iu["uid"].isin(set(gold["uid"])) & ((iu["findings"] != "") | (iu["impression"] != ""))]
    train_rules = label([iu_report_text(r) for r in iu.to_dict("records")])

    preds: dict[str, Path] = {}
    changed: dict[str, tuple[int, int]] = {}
    for name, policy in POLICIES.items():
        fixed = [repair(lab, mesh.loc[uid], policy) for uid, lab in zip(gold["uid"], gold_rules, strict=True)]
        path = args.out / f"gold_{name.split()[0]}.csv"
        write_labels(path, list(gold["id"]), [[encode_csv_value(f.get(o)) for o in OBSERVATIONS] for f in fixed])
        preds[name] = path
        n_gold = sum(sum(f.get(o) != lab.get(o) for o in OBSERVATIONS) for f, lab in zip(fixed, gold_rules))
        n_train = sum(
            sum(repair(lab, mesh.loc[uid], policy).get(o) != lab.get(o) for o in OBSERVATIONS)
            for uid, lab in zip(iu["uid"], train_rules, strict=True)
        )
        changed[name] = (n_gold, n_train)
    ev = evaluate(shared / "gold-dev/labels.csv", preds, resamples=args.resamples)
    base = ev.labelers[0].name
    pvals = {c.b: c for c in ev.comparisons if c.a == base}
    print(f"| Silver labels | gold-dev mean weighted F1 [95% CI] | labels changed on gold-dev | labels changed in "
          f"training set ({len(iu)} reports) | paired t / Wilcoxon p vs rules |")
    print("|---|---|---|---|---|")
    for r in ev.labelers:
        c = pvals.get(r.name)
        p = f"{c.ttest_p:.3f} / {c.wilcoxon_p:.3f}" if c else "-"
        print(f"| {r.name} | {r.mean_weighted_f1:.4f} [{r.ci[0]:.3f}-{r.ci[1]:.3f}] | {changed[r.name][0]} | "
              f"{changed[r.name][1]} | {p} |")


if __name__ == "__main__":
    main()
