"""Why the rule labeler has its own scope engine: medspaCy's ConText, measured on the same reports.

    /tmp/mvenv/bin/python benchmarks/rules_medspacy.py      # a venv with medspacy==1.3.1 (not a project dep)

medspaCy (spaCy tokenizer + PyRuSH sentence splitter + TargetMatcher + ConText) with the CheXpert mention phrases
as targets, single process, one core. Only throughput is compared: if the pipeline cannot reach the 2,000
reports/s target, its accuracy does not decide the choice. Results: benchmarks/rules.md.
"""

from __future__ import annotations

import csv
import os
import statistics
import sys
import time
from pathlib import Path

import medspacy
from medspacy.ner import TargetRule

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared"))
SECTIONS = (
    ("indication", "INDICATION"),
    ("comparison", "COMPARISON"),
    ("findings", "FINDINGS"),
    ("impression", "IMPRESSION"),
)


def reports() -> list[str]:
    with (SHARED / "data/iu-xray/reports.csv").open(encoding="utf-8") as handle:
        rows = [r for r in csv.DictReader(handle) if r["split"] in ("train", "val")]
    return ["\n".join(f"{h}: {r[c].strip()}" for c, h in SECTIONS if r[c].strip()) for r in rows]


def main() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    nlp = medspacy.load()  # default: pyrush sentencizer, target matcher, ConText with its default rules
    phrases = REPO / "connector/rules/data/chexpert/phrases/mention"
    rules = []
    for path in sorted(phrases.glob("*.txt")):
        label = path.stem.upper()
        for line in path.read_text().splitlines():
            if line.strip():
                rules.append(TargetRule(line.strip().replace("_", " ").strip(), label))
    nlp.get_pipe("medspacy_target_matcher").add(rules)
    texts = reports()
    for text in texts[:50]:
        nlp(text.lower())
    rates, cpu_rates = [], []
    for _ in range(3):
        cpu, wall = time.process_time(), time.perf_counter()
        for doc in nlp.pipe(t.lower() for t in texts):
            [(e.label_, e._.is_negated, e._.is_uncertain) for e in doc.ents]
        cpu_rates.append(len(texts) / (time.process_time() - cpu))
        rates.append(len(texts) / (time.perf_counter() - wall))
    print(
        f"medspacy {medspacy.__version__}: pipeline {nlp.pipe_names}, {len(rules)} target rules, {len(texts)} reports"
    )
    print(f"median reports/s: CPU time {statistics.median(cpu_rates):,.0f}, wall {statistics.median(rates):,.0f}")
    print(f"load average at end: {os.getloadavg()[0]:.2f}", file=sys.stderr)


if __name__ == "__main__":
    main()
