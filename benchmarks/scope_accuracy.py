"""Study-scope accuracy on every message in ../shared/data/hl7v2 against the hand-written truth set
(tests/hl7_fhir/data/scope_truth_shared_hl7v2.csv: expected decision per report, read from the procedure and, for
generic procedures, the report text, before the classifier ran).

    RADLABEL_SHARED=../shared PYTHONPATH=. python benchmarks/scope_accuracy.py [--json out.json]

Prints one table: per deciding signal, reports decided and how many were right; per truth group (coded / generic
procedure), accuracy; and every wrong decision (file, control id, reason; no text).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TRUTH = REPO / "tests" / "hl7_fhir" / "data" / "scope_truth_shared_hl7v2.csv"


def scout_to_mllp(shared: Path, dst: Path) -> None:
    spec = importlib.util.spec_from_file_location("scout_to_mllp", shared / "tools" / "scout_to_mllp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    module.convert(str(shared / "data" / "hl7v2" / "washu-tag-scout"), str(dst))


def measure(shared: Path) -> dict:
    from connector.pipeline import MessageRejected, parse_reports, split_messages, study_facts
    from mappings.scope import default_rules

    truth = list(csv.DictReader(TRUTH.open(encoding="utf-8")))
    rules = default_rules()
    with tempfile.TemporaryDirectory() as tmp:
        scout_to_mllp(shared, Path(tmp))
        decided: list[tuple[dict, object]] = []
        seen = 0
        for path in sorted(Path(tmp).glob("*.hl7")):
            for raw in split_messages(path.read_bytes()):
                try:
                    reports = parse_reports(raw)
                except MessageRejected:
                    continue
                for report in reports:
                    row = truth[seen]
                    assert (row["file"], row["control_id"], int(row["obr"])) == (
                        path.name, report.message_control_id, report.obr_index), "truth file out of step with data"
                    seen += 1
                    decided.append((row, rules.decide(study_facts(report))))
    assert seen == len(truth), f"truth has {len(truth)} rows, data {seen} reports"
    by_signal: Counter[tuple[str, bool]] = Counter()
    by_group: Counter[tuple[str, bool]] = Counter()
    wrong = []
    chest_skipped = 0
    for row, decision in decided:
        right = decision.in_scope == (row["expected"] == "in")
        by_signal[(decision.signal, right)] += 1
        group = "generic procedure" if row["generic"] == "yes" else "coded procedure"
        by_group[(group, right)] += 1
        if not right:
            wrong.append({"file": row["file"], "control_id": row["control_id"], "expected": row["expected"],
                          "reason": decision.reason})
        if row["expected"] == "in" and row["read_from"] == "procedure" and not decision.in_scope:
            chest_skipped += 1
    def table(counter: Counter) -> dict:
        keys = sorted({k for k, _ in counter})
        return {k: {"decided": counter[(k, True)] + counter[(k, False)], "right": counter[(k, True)]} for k in keys}
    return {"rules_version": rules.version, "reports": len(decided), "in_scope_truth": sum(r["expected"] == "in" for r, _ in decided),
            "by_signal": table(by_signal), "by_group": table(by_group),
            "chest_procedures_skipped": chest_skipped, "wrong": wrong}


def measure_text_only(shared: Path) -> dict:
    """Signal 4 alone (what `label --scope text` and generic procedures rely on) on reports that are all chest
    radiographs: IU X-ray (sections joined under their headings) and gold-dev. Every "out" is a miss."""
    import pandas as pd

    from mappings.scope import StudyFacts, default_rules

    rules = default_rules()
    iu = pd.read_csv(shared / "data" / "iu-xray" / "reports.csv", dtype=str, keep_default_na=False)
    iu_texts = ["\n".join(f"{name.upper()}: {value}" for name, value in (
        ("indication", row.indication), ("comparison", row.comparison), ("findings", row.findings),
        ("impression", row.impression)) if value) for row in iu.itertuples()]
    gold = pd.read_csv(shared / "data" / "gold-dev" / "reports.csv", dtype=str, keep_default_na=False)
    out = {}
    for name, texts in (("iu-xray", iu_texts), ("gold-dev", list(gold.report))):
        reasons = Counter(rules.decide(StudyFacts(report_text=t)).reason for t in texts)
        out[name] = {"reports": len(texts), "in_scope": reasons.get("report-text", 0),
                     "out_by_reason": {k: v for k, v in reasons.most_common() if k != "report-text"}}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    shared = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))
    if not (shared / "data" / "hl7v2").is_dir():
        sys.exit(f"no shared data at {shared}: set RADLABEL_SHARED")
    result = measure(shared)
    print(f"scope rules {result['rules_version']}: {result['reports']} reports, {result['in_scope_truth']} chest radiographs by truth")
    print("| deciding signal | reports | right | accuracy |\n|---|---|---|---|")
    for name, v in result["by_signal"].items():
        print(f"| {name} | {v['decided']} | {v['right']} | {v['right'] / v['decided']:.1%} |")
    print("| truth group | reports | right | accuracy |\n|---|---|---|---|")
    for name, v in result["by_group"].items():
        print(f"| {name} | {v['decided']} | {v['right']} | {v['right'] / v['decided']:.1%} |")
    print(f"chest radiographs by procedure that were skipped: {result['chest_procedures_skipped']}")
    for w in result["wrong"]:
        print("WRONG", w)
    text_only = measure_text_only(shared)
    result["text_only"] = text_only
    print("| report text alone, on chest radiographs | reports | recognised | out, by reason |\n|---|---|---|---|")
    for name, v in text_only.items():
        print(f"| {name} | {v['reports']} | {v['in_scope']} ({v['in_scope'] / v['reports']:.1%}) | {v['out_by_reason']} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
