"""Where a model labeler and the rule labeler disagree, and who is right: cell-level counts per observation.

    python benchmarks/llm_vs_rules.py --truth gold-dev/labels.csv --rules rules.csv --llm llm.csv

``--write-fallback OUT.csv`` also writes the LLM labels with the rule labels for reports the LLM failed on.
Prints a markdown table (docs/EVALUATION_LLM.md): per observation, cells where only the LLM matches the truth,
only the rules match, and the LLM's error kinds (missed mention = blank where the truth has a class; invented =
a class where the truth is blank; wrong class).
"""

from __future__ import annotations

import argparse

import pandas as pd

from mappings.vocabulary import OBSERVATIONS


def _read(path: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False).set_index("id")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--truth", required=True)
    ap.add_argument("--rules", required=True)
    ap.add_argument("--llm", required=True)
    ap.add_argument("--write-fallback", help="write the LLM labels with rule labels for the reports it failed "
                    "(the connector's flagged fallback), so `radlabel evaluate` scores every report")
    args = ap.parse_args()
    truth, rules, llm = _read(args.truth), _read(args.rules), _read(args.llm)
    if args.write_fallback:
        missing = rules.index.difference(llm.index)
        pd.concat([llm, rules.loc[missing]]).loc[rules.index].reset_index().to_csv(args.write_fallback, index=False)
        print(f"wrote {args.write_fallback}: {len(missing)} report(s) from the rule fallback")
    ids = truth.index.intersection(llm.index).intersection(rules.index)
    print(f"{len(ids)} reports scored by all three (llm labeled {len(llm)})\n")
    print("| Observation | only LLM right | only rules right | LLM missed | LLM invented | LLM wrong class |")
    print("|---|---|---|---|---|---|")
    totals = [0] * 5
    norm = lambda v: {"1.0": "1", "0.0": "0", "-1.0": "-1"}.get(v, v)  # noqa: E731
    for name in OBSERVATIONS:
        t = truth.loc[ids, name].map(norm)
        r = rules.loc[ids, name].map(norm)
        m = llm.loc[ids, name].map(norm)
        row = [((m == t) & (r != t)).sum(), ((r == t) & (m != t)).sum(), ((m == "") & (t != "")).sum(),
               ((m != "") & (t == "")).sum(), ((m != "") & (t != "") & (m != t)).sum()]
        totals = [a + b for a, b in zip(totals, row)]
        print(f"| {name} | " + " | ".join(str(int(x)) for x in row) + " |")
    print("| **all** | " + " | ".join(f"**{int(x)}**" for x in totals) + " |")


if __name__ == "__main__":
    main()
