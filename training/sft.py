"""Supervised fine-tuning with TRL's SFTTrainer, the paper's recipe by default.

Defaults follow the seed paper: batch 2, gradient accumulation 2, AdamW, learning rate 1e-4, 5 epochs, full
fine-tune (LoRA optional, merged after training). bf16 on a GPU, fp32 on a CPU; on CPU gradient checkpointing is
off and ``use_cpu`` is on (TRL's checkpointing default costs 1.4x on a quiet CPU, far more under contention).

Rows are pre-tokenized by :mod:`training.format` (prompt + answer, ``completion_mask`` on the answer), so TRL
puts the loss on answer tokens only and the prompt tokens are byte-for-byte the ones serving sends.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from datasets import Dataset
from mappings.labels import ReportTooLong
from mappings.prompt import PROMPT_VERSION
from pydantic import BaseModel, Field
from transformers import TrainerCallback

from training.data import Example, fingerprint
from training.format import encode_example
from training.models import DEFAULT_BASE, LoadedBase, load_base

log = logging.getLogger(__name__)

RUN_FILE = "run.json"  # written at the start of training; export turns it into the manifest


class TrainConfig(BaseModel):
    base: str = DEFAULT_BASE
    output_dir: Path
    epochs: float = 5.0
    batch_size: int = 2
    grad_accum: int = 2
    learning_rate: float = 1e-4
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    lr_scheduler: str = "linear"
    max_length: int = 1024
    max_steps: int = -1  # > 0 overrides epochs
    lora: bool = False
    bf16: bool | None = None  # None: bf16 on GPU, fp32 on CPU (True on CPU = bf16 autocast over fp32 weights)
    group_by_length: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    save_steps: int = 200
    save_total_limit: int = 3
    logging_steps: int = 10
    seed: int = 42
    resume: bool = True
    threads: int | None = None  # torch CPU threads; 1 when the machine is shared
    retrieval_k: int = 0  # > 0: prepend the k most similar training reports (ablation)
    progress: bool = True
    data: dict = Field(default_factory=dict)  # provenance of the training data, recorded in the manifest


class TrainResult(BaseModel):
    model_dir: Path
    steps: int
    train_loss: float | None
    first_loss: float | None
    last_loss: float | None
    wall_s: float
    n_train: int
    n_val: int
    skipped_too_long: int


class _MetricsLog(TrainerCallback):
    """Appends every Trainer log record (loss, lr, grad norm, eval loss) to a JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ANN001 - Trainer callback signature
        if logs:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps({"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}) + "\n")


def _trainer_class(plain_loss: bool):
    """SFTTrainer, or on CPU one that takes transformers' own loss: TRL's chunked fused LM-head loss has no fast CPU
    kernel (measured 2-3x slower per step here); the answer-only labels are the same either way."""
    from transformers import Trainer
    from trl import SFTTrainer

    if not plain_loss:
        return SFTTrainer

    class PlainLossSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            return Trainer.compute_loss(self, model, inputs, return_outputs, num_items_in_batch)

    return PlainLossSFTTrainer


def build_rows(
    examples: Sequence[Example], loaded: LoadedBase, max_length: int, retrieval_k: int = 0, retriever=None
) -> tuple[list[dict], int]:
    """Pre-tokenized rows; examples that do not fit ``max_length`` are skipped and counted, never truncated."""
    rows, skipped = [], 0
    shots: list[list[tuple[str, dict]]] = [[] for _ in examples]
    if retrieval_k > 0:
        if retriever is None:
            raise ValueError("retrieval_k > 0 needs a retriever")
        shots = retriever.examples_for([ex.report for ex in examples], k=retrieval_k, exclude_ids=[ex.id for ex in examples])
    for ex, ex_shots in zip(examples, shots):
        try:
            rows.append(encode_example(loaded.tokenizer, ex.report, ex.labels, max_length, ex_shots))
        except ReportTooLong:
            skipped += 1
    return rows, skipped


def sft_config(cfg: TrainConfig, has_val: bool):
    from trl import SFTConfig

    on_gpu = torch.cuda.is_available()
    return SFTConfig(
        output_dir=str(cfg.output_dir),
        per_device_train_batch_size=cfg.batch_size,
        per_device_eval_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
        warmup_steps=cfg.warmup_ratio,  # transformers 5: a float < 1 is a ratio of total steps
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        optim="adamw_torch",
        lr_scheduler_type=cfg.lr_scheduler,
        bf16=on_gpu if cfg.bf16 is None else cfg.bf16,
        train_sampling_strategy="group_by_length" if cfg.group_by_length else "random",
        use_cpu=not on_gpu,
        gradient_checkpointing=on_gpu,
        max_length=cfg.max_length,
        completion_only_loss=True,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        logging_steps=cfg.logging_steps,
        eval_strategy="epoch" if has_val else "no",
        report_to="none",
        seed=cfg.seed,
        disable_tqdm=not cfg.progress,
        dataloader_num_workers=0,
    )


def train(cfg: TrainConfig, train_examples: Sequence[Example], val_examples: Sequence[Example] = (),
          loaded: LoadedBase | None = None) -> TrainResult:
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    started = time.time()
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    loaded = loaded or load_base(cfg.base)
    retriever = None
    if cfg.retrieval_k > 0:
        from training.retrieval import Retriever

        retriever = Retriever.build(train_examples)
        retriever.save(cfg.output_dir / "retrieval")
    train_rows, skipped = build_rows(train_examples, loaded, cfg.max_length, cfg.retrieval_k, retriever)
    val_rows, skipped_val = build_rows(val_examples, loaded, cfg.max_length, cfg.retrieval_k, retriever)
    if not train_rows:
        raise ValueError("no training example fits max_length")
    log.info("training rows=%d val=%d skipped_too_long=%d", len(train_rows), len(val_rows), skipped + skipped_val)

    run = {
        # The prompt format the rows were built with; export copies it into the manifest and serving checks it.
        "prompt_version": PROMPT_VERSION,
        "base": loaded.info,
        "data": {**cfg.data, "n_train": len(train_rows), "n_val": len(val_rows),
                 "skipped_too_long": skipped + skipped_val,
                 "train_fingerprint": fingerprint(train_examples), "val_fingerprint": fingerprint(val_examples)},
        "hyperparameters": cfg.model_dump(mode="json", exclude={"output_dir", "data", "progress", "resume", "base"}),
    }
    (cfg.output_dir / RUN_FILE).write_text(json.dumps(run, indent=2), encoding="utf-8")

    peft_config = None
    if cfg.lora:
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, target_modules="all-linear",
                                 lora_dropout=0.0, task_type="CAUSAL_LM")
    trainer = _trainer_class(plain_loss=not torch.cuda.is_available())(
        model=loaded.model,
        args=sft_config(cfg, bool(val_rows)),
        train_dataset=Dataset.from_list(train_rows),
        eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
        processing_class=loaded.tokenizer,
        peft_config=peft_config,
        callbacks=[_MetricsLog(cfg.output_dir / "metrics.jsonl")],
    )
    resume = cfg.resume and any(cfg.output_dir.glob("checkpoint-*"))
    output = trainer.train(resume_from_checkpoint=True if resume else None)

    model = trainer.model
    if cfg.lora:
        model = model.merge_and_unload()
    model_dir = cfg.output_dir / "model"
    from training.export import save_model

    save_model(model, loaded.tokenizer, model_dir, run, step=trainer.state.global_step)
    if retriever is not None:
        retriever.save(model_dir / "retrieval")

    losses = [r["loss"] for r in trainer.state.log_history if "loss" in r]
    return TrainResult(model_dir=model_dir, steps=trainer.state.global_step, train_loss=output.training_loss,
                       first_loss=losses[0] if losses else None, last_loss=losses[-1] if losses else None,
                       wall_s=time.time() - started, n_train=len(train_rows), n_val=len(val_rows),
                       skipped_too_long=skipped + skipped_val)
