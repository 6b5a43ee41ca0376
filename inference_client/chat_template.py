"""Turn :func:`mappings.prompt.build_messages` output into the single prompt string TGI's native /generate needs.

/generate does no templating, so the client must render exactly what the model saw in training:

- with ``tokenizer`` set (a model directory or tokenizer folder holding ``tokenizer_config.json`` with a
  ``chat_template``): that template, via transformers' ``apply_chat_template`` with the generation prompt - the
  same call the training code uses, so there is no skew;
- without it: plain ChatML (below), the format of SmolLM2 and Qwen models. Note that a model's own template may
  add things ChatML does not (SmolLM2's adds a default system turn), so set ``tokenizer`` for fine-tuned models.

This module is the only place the native client builds prompt text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

Messages = Sequence[dict[str, str]]

CHATML_TEMPLATE_DOC = "<|im_start|>{role}\\n{content}<|im_end|>\\n ... <|im_start|>assistant\\n"


def render_chatml(messages: Messages) -> str:
    turns = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
    return turns + "<|im_start|>assistant\n"


@lru_cache(maxsize=4)
def _tokenizer_renderer(tokenizer: str) -> Callable[[Messages], str]:
    try:
        from transformers import AutoTokenizer
    except ImportError as exc:  # connector-only install
        raise RuntimeError("rendering a tokenizer chat template needs transformers (pip install '.[train]')") from exc
    tok = AutoTokenizer.from_pretrained(tokenizer)
    if not getattr(tok, "chat_template", None):
        raise ValueError(f"tokenizer {tokenizer!r} has no chat_template")

    def render(messages: Messages) -> str:
        return tok.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)

    return render


def prompt_renderer(tokenizer: str | None) -> Callable[[Messages], str]:
    """The renderer for a configured tokenizer, or ChatML. Loads the tokenizer once, up front."""
    if tokenizer:
        return _tokenizer_renderer(tokenizer)
    return render_chatml
