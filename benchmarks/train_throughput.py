"""Training throughput: tokens/s and peak memory for a few SFT steps with the project's recipe.

The one short prepared script to run where a GPU is available (docs/TRAINING.md), e.g.

    python benchmarks/train_throughput.py --base Qwen/Qwen1.5-0.5B --data train.jsonl --steps 30
    python benchmarks/train_throughput.py --base smollm2 --silver ../shared/data/iu-xray/reports.csv --steps 5

Prints one JSON line (device, base, steps, tokens, seconds, tokens/s, peak memory) to paste into
benchmarks/training.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import tempfile
import time
from pathlib import Path

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--base", default="tiny-qwen2")
    ap.add_argument("--data", type=Path, help="generic CSV/JSONL table (id, report, 14 columns)")
    ap.add_argument("--silver", type=Path, help="IU X-ray reports.csv, labeled by the rule labeler")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--grad-accum", type=int, default=2)
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--lora", action="store_true")
    ap.add_argument("--bf16", action="store_true", default=None)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()

    from training import data
    from training.sft import TrainConfig, train

    if args.data:
        examples = data.load_table(args.data)
    elif args.silver:
        from connector.rules.labeler import RuleLabeler

        examples = data.silver_label(data.load_iu_reports(args.silver), RuleLabeler())
    else:
        raise SystemExit("give --data or --silver")
    n = args.steps * args.batch_size * args.grad_accum
    examples = examples[:n]
    with tempfile.TemporaryDirectory() as out:
        cfg = TrainConfig(base=args.base, output_dir=Path(out), max_steps=args.steps, batch_size=args.batch_size,
                          grad_accum=args.grad_accum, max_length=args.max_length, lora=args.lora, bf16=args.bf16,
                          threads=args.threads, save_steps=10**9, logging_steps=max(1, args.steps // 5),
                          progress=False, resume=False)
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()
        started = time.time()
        result = train(cfg, examples)
        wall = time.time() - started
        log = [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]
        from transformers import AutoTokenizer

        from training.format import answer_ids, prompt_ids

        tok = AutoTokenizer.from_pretrained(str(result.model_dir))
        # Tokens the steps actually processed (examples over max_length are skipped by training too).
        lengths = [len(prompt_ids(tok, e.report)) + len(answer_ids(tok, e.labels)) for e in examples]
        tokens = sum(n for n in lengths if n <= args.max_length)
    train_s = next((r["train_runtime"] for r in log if "train_runtime" in r), wall)
    peak = (torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20)
    print(json.dumps({
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu",
        "base": args.base, "lora": args.lora, "steps": result.steps, "examples": len(examples),
        "train_s": round(train_s, 1), "tokens": tokens,
        "tokens_per_s": round(tokens / train_s, 1) if tokens else None,
        "peak_mem_gib": round(peak, 2), "peak_mem_kind": "cuda allocated" if torch.cuda.is_available() else "RSS",
        "first_loss": result.first_loss, "last_loss": result.last_loss,
    }))


if __name__ == "__main__":
    main()
