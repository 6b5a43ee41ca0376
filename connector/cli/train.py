"""radlabel train / radlabel export: fine-tune the LLM labeler with TRL and export it for serving."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Optional

import typer

Paths = Annotated[Optional[list[Path]], typer.Option(help="repeatable")]


def _load_examples(table: list[Path], mimic_labels: Path | None, mimic_reports: Path | None,
                   silver: list[Path], exclude_ids_from: list[Path], limit: int | None,
                   silver_profile: str = "improved") -> tuple[list, dict]:
    import csv

    from training import data

    examples: list[data.Example] = []
    sources: list[dict] = []
    for path in table:
        rows = data.load_table(path)
        examples += rows
        sources.append({"kind": "table", "path": str(path), "n": len(rows)})
    if mimic_labels or mimic_reports:
        if not (mimic_labels and mimic_reports):
            raise typer.BadParameter("--mimic-labels and --mimic-reports go together")
        rows = data.load_mimic(mimic_labels, mimic_reports)
        examples += rows
        sources.append({"kind": "mimic-cxr", "path": str(mimic_labels), "n": len(rows)})
    if silver:
        from connector.rules.labeler import RuleLabeler

        teacher = RuleLabeler(silver_profile)

        # The lock-box of the annotated set is never trained on, whatever the flags say: a model that saw those
        # reports (even with silver labels) would turn every later lock-box score into a tuned number.
        excluded: set[str] = data.lockbox_uids()
        for path in exclude_ids_from:
            excluded |= data.gold_dev_uids(path)
        for path in silver:
            with path.open(encoding="utf-8", newline="") as fh:
                fields = csv.DictReader(fh).fieldnames or []
            if "uid" in fields and "findings" in fields:  # IU X-ray layout
                reports = data.load_iu_reports(path, excluded)
            elif "id" in fields and "report" in fields:
                import pandas as pd

                frame = pd.read_csv(path, dtype=str, keep_default_na=False)
                reports = [(i, r) for i, r in zip(frame["id"], frame["report"]) if i not in excluded and r.strip()]
            else:
                raise typer.BadParameter(f"{path}: need IU X-ray columns (uid, findings, ...) or id,report")
            rows = data.silver_label(reports, teacher)
            examples += rows
            sources.append({"kind": "silver", "path": str(path), "labeler": f"{teacher.info.name} {teacher.info.version}", "n": len(rows),
                            "excluded_ids": len(excluded), "lockbox_excluded": True})
    if not examples:
        raise typer.BadParameter("no training data: give --table, --mimic-labels/--mimic-reports or --silver")
    if limit:
        examples = examples[:limit]
    return examples, {"sources": sources}


def train_command(
    out: Annotated[Path, typer.Option("--out", help="output directory (checkpoints, metrics.jsonl, model/)")],
    base: Annotated[str, typer.Option(help="hub id, local model dir, .gguf file, 'smollm2' or 'tiny-qwen2'")
                    ] = "Qwen/Qwen1.5-0.5B",
    table: Paths = None,
    mimic_labels: Annotated[Optional[Path], typer.Option(help="mimic-cxr-2.0.0-chexpert.csv")] = None,
    mimic_reports: Annotated[Optional[Path], typer.Option(help="MIMIC-CXR report root (files/pXX/...)")] = None,
    silver: Annotated[Optional[list[Path]], typer.Option(help="reports to label with the rule labeler")] = None,
    silver_profile: Annotated[str, typer.Option(help="rule profile for silver labels: improved | chexpert")
                              ] = "improved",
    exclude_ids_from: Annotated[Optional[list[Path]], typer.Option(
        help="CSV with a uid column (e.g. gold-dev/reports.csv): never train on these")] = None,
    val_fraction: float = 0.05,
    split_seed: int = 0,
    limit: Annotated[Optional[int], typer.Option(help="use only the first N examples")] = None,
    epochs: float = 5.0,
    batch_size: int = 2,
    grad_accum: int = 2,
    lr: float = 1e-4,
    lr_scheduler: str = "linear",
    max_length: int = 1024,
    max_steps: int = -1,
    lora: bool = False,
    lora_r: int = 16,
    bf16: Annotated[Optional[bool], typer.Option("--bf16/--fp32", help="default: bf16 on GPU, fp32 on CPU")] = None,
    group_by_length: bool = False,
    save_steps: int = 200,
    logging_steps: int = 10,
    threads: Annotated[Optional[int], typer.Option(help="torch CPU threads (1 on a shared machine)")] = None,
    retrieval_k: Annotated[int, typer.Option(help="prepend k most similar training reports (ablation)")] = 0,
    resume: Annotated[bool, typer.Option("--resume/--no-resume")] = True,
    seed: int = 42,
) -> None:
    """Fine-tune a causal LM on (instruction, report, compact JSON answer) with TRL's SFTTrainer."""
    from training.data import split
    from training.sft import TrainConfig, train

    logging.basicConfig(level=logging.INFO)
    examples, provenance = _load_examples(table or [], mimic_labels, mimic_reports, silver or [],
                                          exclude_ids_from or [], limit, silver_profile)
    train_set, val_set = split(examples, val_fraction, split_seed)
    provenance.update({"split": {"by": "sha256(normalised report text)", "val_fraction": val_fraction,
                                 "seed": split_seed}})
    cfg = TrainConfig(base=base, output_dir=out, epochs=epochs, batch_size=batch_size, grad_accum=grad_accum,
                      learning_rate=lr, lr_scheduler=lr_scheduler, max_length=max_length, max_steps=max_steps,
                      lora=lora, lora_r=lora_r, lora_alpha=2 * lora_r, bf16=bf16, group_by_length=group_by_length,
                      save_steps=save_steps, logging_steps=logging_steps, threads=threads, retrieval_k=retrieval_k,
                      resume=resume, seed=seed, data=provenance)
    result = train(cfg, train_set, val_set)
    typer.echo(result.model_dump_json())


def export_command(
    source: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="training model/ dir or checkpoint-N")],
    out: Annotated[Path, typer.Option("--out", help="export directory")],
    gguf: Annotated[bool, typer.Option("--gguf/--no-gguf", help="also write a GGUF for llama.cpp")] = True,
    outtype: Annotated[str, typer.Option(help="GGUF tensor type: f32, f16, bf16, q8_0")] = "f16",
) -> None:
    """Merged safetensors (+ GGUF) + manifest.json, ready for TGI/vLLM, llama.cpp or `--labeler llm --model`."""
    from training.export import ExportError, export

    try:
        manifest = export(source, out, gguf=gguf, outtype=outtype)
    except ExportError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(code=2) from None
    typer.echo(json.dumps({"version": manifest["version"], "out": str(out), "gguf": manifest.get("gguf")}))


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)
    app.command("export")(export_command)
