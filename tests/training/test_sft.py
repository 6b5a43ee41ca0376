"""Fine-tuning end to end on a tiny random Qwen2 with the real Qwen tokenizer: loss falls, the saved model
reloads in the in-process labeler and answers the trained reports with schema-valid, correct labels."""

from __future__ import annotations

import json

import pytest

from mappings.labels import AnswerInvalid, ReportTooLong
from training.export import read_manifest
from training.sft import TrainConfig, train

from tests.training.conftest import MEMORISE


def test_loss_decreases_and_metrics_are_logged(trained_tiny):
    out, result = trained_tiny
    assert result.steps == 50
    assert result.first_loss > 5 * result.last_loss, (result.first_loss, result.last_loss)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) == 10 and losses[-1] < losses[0]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-25", "checkpoint-50"]


async def test_saved_model_reloads_and_answers_trained_reports(trained_tiny):
    from inference_client.local import TransformersLabeler

    out, result = trained_tiny
    manifest = read_manifest(result.model_dir)
    labeler = TransformersLabeler(result.model_dir, batch_size=2)
    assert labeler.info.version == manifest["version"] and labeler.info.name == "llm"
    outcomes = await labeler.label_batch_detailed([ex.report for ex in MEMORISE])
    for ex, outcome in zip(MEMORISE, outcomes):
        assert not isinstance(outcome, Exception), outcome
        assert outcome.labels == ex.labels
        assert outcome.labeler.version == manifest["version"]


def test_model_trained_on_another_prompt_version_is_refused(trained_tiny, tmp_path):
    import json
    import shutil

    from inference_client.local import TransformersLabeler
    from mappings.prompt import PROMPT_VERSION

    _, result = trained_tiny
    assert read_manifest(result.model_dir)["prompt_version"] == PROMPT_VERSION
    other = tmp_path / "other"
    shutil.copytree(result.model_dir, other)
    manifest = read_manifest(other)
    manifest["prompt_version"] = "0"
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="prompt version 0"):
        TransformersLabeler(other)


async def test_report_too_long_is_a_typed_error_not_a_truncation(trained_tiny):
    from inference_client.local import TransformersLabeler

    _, result = trained_tiny
    labeler = TransformersLabeler(result.model_dir, context_length=400)
    long_report = "FINDINGS: " + "The lungs are clear. " * 200
    short, too_long = await labeler.label_batch_detailed([MEMORISE[0].report, long_report])
    assert short.labels == MEMORISE[0].labels
    assert isinstance(too_long, ReportTooLong)
    with pytest.raises(ReportTooLong):
        await labeler.label_batch([long_report])


def test_untrained_model_answers_are_rejected_not_guessed(tmp_path):
    """A random model emits junk: the labeler must return AnswerInvalid, never labels."""
    import asyncio

    from inference_client.local import TransformersLabeler
    from training.export import save_model
    from training.models import build_tiny_qwen2

    base = build_tiny_qwen2(seed=3)
    save_model(base.model, base.tokenizer, tmp_path, {"base": base.info})
    labeler = TransformersLabeler(tmp_path, max_new_tokens=12)
    (outcome,) = asyncio.run(labeler.label_batch_detailed([MEMORISE[0].report]))
    assert isinstance(outcome, AnswerInvalid)


def test_resume_continues_from_the_last_checkpoint(trained_tiny, tmp_path):
    import shutil

    from training.models import load_dir

    out, _ = trained_tiny
    run = tmp_path / "run"
    run.mkdir()
    shutil.copytree(out / "checkpoint-25", run / "checkpoint-25")
    # Same logging_steps as the checkpoint: on resume the Trainer keeps the checkpoint's schedule anyway.
    cfg = TrainConfig(base="tiny-qwen2", output_dir=run, max_steps=30, batch_size=2, grad_accum=1,
                      learning_rate=3e-3, lr_scheduler="constant", logging_steps=5, save_steps=100,
                      max_length=256, progress=False, resume=True)
    result = train(cfg, MEMORISE, loaded=load_dir(out / "checkpoint-25"))
    assert result.steps == 30
    logged = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss" in r] == [30]  # steps 1-25 were not re-run


def test_lora_is_merged_into_a_plain_model(tmp_path):
    from transformers import AutoModelForCausalLM

    cfg = TrainConfig(base="tiny-qwen2", output_dir=tmp_path, max_steps=2, batch_size=2, grad_accum=1,
                      learning_rate=1e-3, lora=True, lora_r=4, lora_alpha=8, logging_steps=1, save_steps=100,
                      max_length=256, progress=False, resume=False)
    result = train(cfg, MEMORISE)
    files = {p.name for p in result.model_dir.iterdir()}
    assert "model.safetensors" in files and "adapter_config.json" not in files
    model = AutoModelForCausalLM.from_pretrained(result.model_dir)
    assert not any("lora" in name for name, _ in model.named_parameters())
    assert read_manifest(result.model_dir)["hyperparameters"]["lora"] is True
