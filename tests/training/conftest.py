"""Fixtures for the training tests: a tiny random Qwen2 (real Qwen tokenizer) trained once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from mappings.vocabulary import Certainty as C
from training.data import Example

# Two short, different reports: enough for a 128-wide random model to memorise in a few dozen steps.
MEMORISE = [
    Example(id="m1", report="FINDINGS: Heart is enlarged. Small left pleural effusion.",
            labels={"Cardiomegaly": C.POSITIVE, "Pleural Effusion": C.POSITIVE}),
    Example(id="m2", report="IMPRESSION: Lungs are clear. No pneumothorax.",
            labels={"No Finding": C.POSITIVE, "Pneumothorax": C.NEGATIVE}),
]


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    # The suite shares a small CPU; two threads collapse when another process holds a core.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def trained_tiny(tmp_path_factory) -> tuple[Path, object]:
    from training.models import build_tiny_qwen2
    from training.sft import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-run")
    cfg = TrainConfig(base="tiny-qwen2", output_dir=out, max_steps=50, batch_size=2, grad_accum=1,
                      learning_rate=3e-3, lr_scheduler="constant", logging_steps=5, save_steps=25,
                      max_length=256, progress=False, resume=False, data={"sources": [{"kind": "fixture"}]})
    result = train(cfg, MEMORISE, loaded=build_tiny_qwen2(hidden_size=128))
    return out, result
