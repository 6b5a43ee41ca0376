"""Token-level training/serving format: the model's chat template around :mod:`mappings.prompt`.

The prompt is the chat template applied to :func:`mappings.prompt.build_messages` with the generation prompt
appended; the completion is :func:`mappings.prompt.render_answer` followed by the end-of-turn token. Training
puts loss on the completion tokens only (``completion_mask``); serving feeds exactly :func:`prompt_ids` and stops
at the end-of-turn token, so both sides see the same tokens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mappings.labels import ReportTooLong
from mappings.prompt import build_messages, render_answer
from mappings.vocabulary import Certainty
from transformers import PreTrainedTokenizerBase

from training.models import end_of_turn_id

Examples = Sequence[tuple[str, Mapping[str, Certainty]]]


def prompt_text(tokenizer: PreTrainedTokenizerBase, report: str, examples: Examples = ()) -> str:
    return tokenizer.apply_chat_template(build_messages(report, examples), add_generation_prompt=True, tokenize=False)


def prompt_ids(tokenizer: PreTrainedTokenizerBase, report: str, examples: Examples = ()) -> list[int]:
    # The template already holds the special tokens; adding them again would put a second BOS in some models.
    return tokenizer(prompt_text(tokenizer, report, examples), add_special_tokens=False)["input_ids"]


def answer_ids(tokenizer: PreTrainedTokenizerBase, labels: Mapping[str, Certainty | str | None]) -> list[int]:
    return tokenizer(render_answer(labels), add_special_tokens=False)["input_ids"] + [end_of_turn_id(tokenizer)]


def encode_example(
    tokenizer: PreTrainedTokenizerBase,
    report: str,
    labels: Mapping[str, Certainty | str | None],
    max_length: int,
    examples: Examples = (),
) -> dict[str, list[int]]:
    """One pre-tokenized SFT row. Raises ReportTooLong rather than truncating (a cut answer teaches garbage)."""
    prompt = prompt_ids(tokenizer, report, examples)
    answer = answer_ids(tokenizer, labels)
    total = len(prompt) + len(answer)
    if total > max_length:
        raise ReportTooLong(f"example is {total} tokens, max_length is {max_length}")
    return {"input_ids": prompt + answer, "completion_mask": [0] * len(prompt) + [1] * len(answer)}
