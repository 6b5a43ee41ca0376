"""Retrieval ablation at inference time: build the MiniLM index from the TRAINING split of a finished run and
write a variant of an exported model dir whose manifest asks for k retrieved examples.

The training split is rebuilt exactly as `radlabel train` did (same silver labels, gold-dev ids excluded, same
hash split) and checked against the run's train_fingerprint, so no gold-dev or validation report can enter the
index. The variant dir links the exported weights; only manifest.json (retrieval_k, version suffix) differs.

    python benchmarks/retrieval_index.py --run /work/runs/smol --model /work/runs/eval/final \
        --silver ../shared/data/iu-xray/reports.csv --exclude-ids-from ../shared/data/gold-dev/reports.csv \
        --index /work/runs/eval/retrieval/index --k 1 --k 2 --out-prefix /work/runs/eval/final-rk
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", type=Path, required=True, help="training output dir (run.json)")
    ap.add_argument("--model", type=Path, required=True, help="exported model dir (manifest.json)")
    ap.add_argument("--silver", type=Path, action="append", required=True)
    ap.add_argument("--exclude-ids-from", type=Path, action="append", default=[])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--k", type=int, action="append", required=True)
    ap.add_argument("--out-prefix", required=True)
    args = ap.parse_args()

    from connector.cli.train import _load_examples
    from training.data import fingerprint, gold_dev_uids, split
    from training.retrieval import Retriever

    run = json.loads((args.run / "run.json").read_text())
    examples, _ = _load_examples([], None, None, args.silver, args.exclude_ids_from, None)
    split_cfg = run["data"]["split"]
    train_set, val_set = split(examples, split_cfg["val_fraction"], split_cfg["seed"])
    if fingerprint(train_set) != run["data"]["train_fingerprint"]:
        raise SystemExit("training split differs from the run's (fingerprint mismatch)")
    gold: set[str] = set()
    for path in args.exclude_ids_from:
        gold |= {f"iu-{u}" for u in gold_dev_uids(path)}
    assert not gold & {ex.id for ex in train_set}, "gold-dev id in the index"
    print(f"train split: {len(train_set)} examples, fingerprint ok; val {len(val_set)} left out")

    if (args.index / "embeddings.npy").is_file():
        retriever = Retriever.load(args.index)
        if [ex.id for ex in retriever.examples] != [ex.id for ex in train_set]:
            raise SystemExit("existing index is not this training split")
    else:
        retriever = Retriever.build(train_set)
        retriever.save(args.index)

    for k in args.k:
        out = Path(f"{args.out_prefix}{k}")
        out.mkdir(parents=True, exist_ok=True)
        for f in args.model.iterdir():
            if f.name != "manifest.json" and f.suffix != ".gguf" and not (out / f.name).exists():
                (out / f.name).symlink_to(f.resolve())
        if not (out / "retrieval").exists():
            (out / "retrieval").symlink_to(args.index.resolve())
        manifest = json.loads((args.model / "manifest.json").read_text())
        manifest["hyperparameters"]["retrieval_k"] = k
        manifest["version"] += f"+rk{k}-inference-only"
        (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
