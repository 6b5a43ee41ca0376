"""Export: merged safetensors + GGUF (llama.cpp's own converter) + manifest; the GGUF reloads to the same model,
and real llama.cpp (llama-cpp-python) tokenizes our prompt identically and answers a trained report correctly."""

from __future__ import annotations

import json
import os

import pytest
import torch

from mappings.prompt import parse_answer
from training.export import CONVERTER_ENV, DEFAULT_CONVERTER_CACHE, ExportError, export, read_manifest

from tests.training.conftest import MEMORISE


def _converter_available() -> bool:
    return bool(os.environ.get(CONVERTER_ENV)) or (DEFAULT_CONVERTER_CACHE / "convert_hf_to_gguf.py").is_file() \
        or any((DEFAULT_CONVERTER_CACHE.parent / "sdist").glob("llama_cpp_python-*.tar.gz"))


needs_converter = pytest.mark.skipif(not _converter_available(),
                                     reason="llama.cpp converter not cached (radlabel export downloads it with pip)")


@pytest.fixture(scope="module")
def exported(trained_tiny, tmp_path_factory):
    if not _converter_available():
        pytest.skip("llama.cpp converter not cached")
    out, result = trained_tiny
    target = tmp_path_factory.mktemp("export")
    manifest = export(out / "checkpoint-50", target, gguf=True, outtype="f32")
    return target, manifest, result


@needs_converter
def test_manifest_names_base_data_hyperparameters_revision_and_files(exported):
    target, manifest, result = exported
    assert manifest == read_manifest(target)
    assert manifest["base_model"]["base"] == "tiny-qwen2"
    assert manifest["data"]["n_train"] == 2 and manifest["data"]["sources"] == [{"kind": "fixture"}]
    assert manifest["hyperparameters"]["learning_rate"] == 3e-3
    assert manifest["step"] == 50
    assert len(manifest["git_revision"].split("-")[0]) == 40
    assert set(manifest["files"]) >= {"model.safetensors", manifest["gguf"]}
    # The version names the weights: the checkpoint's export equals the training run's final model.
    assert manifest["version"] == read_manifest(result.model_dir)["version"]


@needs_converter
def test_every_exported_file_is_readable_by_another_user(exported):
    # The export is mounted read-only into a container running as another uid (the image's 10001): a 0600
    # model.safetensors made the in-process labeler fail there with a misleading "file not found".
    target, manifest, _ = exported
    files = [p for p in target.rglob("*") if p.is_file()]
    assert {"model.safetensors", manifest["gguf"], "manifest.json"} <= {p.name for p in files}
    for path in files:
        assert path.stat().st_mode & 0o004, f"{path.name} is not world-readable"


@needs_converter
def test_gguf_reloads_to_the_same_logits(exported):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target, manifest, _ = exported
    tok = AutoTokenizer.from_pretrained(target)
    hf = AutoModelForCausalLM.from_pretrained(target)
    gg = AutoModelForCausalLM.from_pretrained(target, gguf_file=manifest["gguf"])
    ids = tok(MEMORISE[0].report, return_tensors="pt")
    with torch.inference_mode():
        assert torch.allclose(hf(**ids).logits, gg(**ids).logits, atol=1e-4)


@needs_converter
def test_llama_cpp_serves_the_exported_gguf(exported):
    llama_cpp = pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    from training.format import prompt_ids, prompt_text

    target, manifest, _ = exported
    tok = AutoTokenizer.from_pretrained(target)
    llm = llama_cpp.Llama(model_path=str(target / manifest["gguf"]), n_ctx=512, n_threads=1, verbose=False)
    ex = MEMORISE[0]
    ids = prompt_ids(tok, ex.report)
    # No train/serve skew: llama.cpp's tokenizer reads our prompt text as exactly the training tokens.
    assert llm.tokenize(prompt_text(tok, ex.report).encode(), add_bos=False, special=True) == ids
    out = llm.create_completion(prompt=ids, max_tokens=60, temperature=0.0, top_k=1, stop=["<|im_end|>"])
    assert parse_answer(out["choices"][0]["text"]) == ex.labels


def test_export_without_run_metadata_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
    with pytest.raises(ExportError, match="cannot say what this model is"):
        export(tmp_path, tmp_path / "out", gguf=False)


def test_continued_training_from_an_export_keeps_the_lineage(exported, tmp_path):
    # `radlabel train --base EXPORT_DIR` continues from our own export: its manifest names where it started.
    from training.models import load_dir

    target, manifest, _ = exported
    info = load_dir(target).info
    assert info["kind"] == "local" and info["parent_version"] == manifest["version"]
    assert info["parent_base"] == "tiny-qwen2"
    # ... and a model trained from it is versioned under that root base, not the directory name.
    from training.export import build_manifest

    run = {"base": info, "data": {}, "hyperparameters": {}}
    assert build_manifest(target, run)["version"].startswith("radlabel-llm-tiny-qwen2-")
    # A continuation of a continuation still names the root base, not the directory of the first continuation
    # (whose own manifest has base = that directory and parent_base = the root).
    import shutil

    gen2 = tmp_path / "gen2"
    shutil.copytree(target, gen2)
    first = {**manifest, "base_model": {"base": "/runs/first-continuation-export", "kind": "local",
                                        "parent_version": manifest["version"], "parent_base": "tiny-qwen2"}}
    (gen2 / "manifest.json").write_text(json.dumps(first))
    assert load_dir(gen2).info["parent_base"] == "tiny-qwen2"
