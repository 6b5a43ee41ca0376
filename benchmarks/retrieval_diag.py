"""Retrieval ablation diagnostics: prompt lengths per k, and how often the model's answer copies the label set of
the nearest retrieved training report (the copying the inference-only variant invites).

    python benchmarks/retrieval_diag.py --model /work/runs/eval/final-rk1 --reports ../shared/data/gold-dev/reports.csv \
        --pred k0=llm-rk0.csv --pred k1=llm-rk1.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, required=True, help="a model dir with retrieval/ (index)")
    ap.add_argument("--reports", type=Path, required=True)
    ap.add_argument("--pred", action="append", required=True, help="NAME=labels.csv")
    ap.add_argument("--write-nn", type=Path, help="also write the nearest training report's labels as a labels CSV")
    args = ap.parse_args()

    from mappings.vocabulary import OBSERVATIONS, encode_csv_value
    from transformers import AutoTokenizer

    from training.format import prompt_ids
    from training.retrieval import Retriever

    reports = pd.read_csv(args.reports, dtype=str, keep_default_na=False)
    retriever = Retriever.load(args.model / "retrieval")
    texts = list(reports["report"])
    tok = AutoTokenizer.from_pretrained(str(args.model))
    for k in (0, 1, 2):
        shots = retriever.examples_for(texts, k) if k else [[] for _ in texts]
        lengths = [len(prompt_ids(tok, r, s)) for r, s in zip(texts, shots)]
        print(f"k={k}: prompt tokens mean {np.mean(lengths):.0f}, max {max(lengths)}")
    nearest = retriever.nearest(texts, 1)
    sims = (retriever.embedder(texts) @ retriever.embeddings.T).max(axis=1)
    print(f"nearest-neighbour cosine: median {np.median(sims):.3f}, min {sims.min():.3f}")

    def row(labels: dict) -> tuple:
        return tuple(encode_csv_value(labels.get(o)) for o in OBSERVATIONS)

    nn_rows = {i: row(retriever.examples[n[0]].labels) for i, n in zip(reports["id"], nearest)}
    if args.write_nn:
        pd.DataFrame([[i, *r] for i, r in nn_rows.items()], columns=["id", *OBSERVATIONS]).to_csv(args.write_nn, index=False)
    frames = {}
    for spec in args.pred:
        name, path = spec.split("=", 1)
        frame = pd.read_csv(path, dtype=str, keep_default_na=False).set_index("id")
        frames[name] = frame
        same = sum(tuple(frame.loc[i, list(OBSERVATIONS)]) == nn_rows[i] for i in frame.index)
        print(f"{name}: answer == nearest training report's label set in {same}/{len(frame)} reports")
    names = list(frames)
    for other in names[1:]:
        a, b = frames[names[0]], frames[other]
        changed = sum(tuple(a.loc[i, list(OBSERVATIONS)]) != tuple(b.loc[i, list(OBSERVATIONS)]) for i in a.index)
        print(f"{other} vs {names[0]}: {changed}/{len(a)} reports with a different label row")


if __name__ == "__main__":
    main()
