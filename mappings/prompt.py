"""The one instruction/answer format shared by training (training/) and serving (inference_client/).

Training renders (instruction, report, answer) with :func:`build_messages` + :func:`render_answer`; serving sends
the same :func:`build_messages` and parses the reply with :func:`parse_answer`. Nothing else may format prompts,
so there is no train/serve skew.

The answer is compact JSON holding only the non-blank observations, keys in vocabulary order, e.g.
``{"Cardiomegaly":"positive","Pleural Effusion":"negative"}``. :data:`ANSWER_SCHEMA` is its JSON Schema for
constrained decoding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from mappings.labels import AnswerInvalid
from mappings.vocabulary import ALLOWED, OBSERVATIONS, Certainty

PROMPT_VERSION = "1"

INSTRUCTION = (
    "You label chest X-ray reports. For each of these observations that the report mentions, say whether it is "
    "positive, negative or uncertain: " + ", ".join(OBSERVATIONS) + ". "
    "Leave out observations the report does not mention. The indication is not a finding. "
    "Answer with one JSON object only."
)

# Every property optional (compact answer) but with enum values and no additional properties, so a
# grammar compiler gets a small, closed language. Property order = vocabulary order (llama.cpp's grammar
# emits optional keys in schema order, which is also the order training answers use).
ANSWER_SCHEMA: dict = {
    "type": "object",
    "properties": {name: {"type": "string", "enum": [c.value for c in ALLOWED[name]]} for name in OBSERVATIONS},
    "additionalProperties": False,
}


def user_content(report: str, examples: Sequence[tuple[str, Mapping[str, Certainty]]] = ()) -> str:
    """The user turn: instruction, optional retrieved examples (retrieval ablation), then the report."""
    parts = [INSTRUCTION]
    for i, (ex_report, ex_labels) in enumerate(examples, 1):
        parts.append(f"Example {i} report:\n{ex_report.strip()}\nExample {i} answer: {render_answer(ex_labels)}")
    parts.append(f"Report:\n{report.strip()}")
    return "\n\n".join(parts)


def build_messages(
    report: str, examples: Sequence[tuple[str, Mapping[str, Certainty]]] = ()
) -> list[dict[str, str]]:
    """Chat messages for one report (no assistant turn). Apply the model's chat template to these."""
    return [{"role": "user", "content": user_content(report, examples)}]


def render_answer(labels: Mapping[str, Certainty | str | None]) -> str:
    """Compact JSON answer: non-blank observations only, vocabulary order, no spaces."""
    out: dict[str, str] = {}
    for name in OBSERVATIONS:
        value = labels.get(name)
        if value is None or value == "":
            continue
        out[name] = Certainty(value).value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def render_full_answer(labels: Mapping[str, Certainty | str | None]) -> str:
    """A 14-key answer with "blank" for unmentioned observations: only used to measure the compact format."""
    out = {}
    for name in OBSERVATIONS:
        value = labels.get(name)
        out[name] = "blank" if value is None or value == "" else Certainty(value).value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def parse_answer(text: str) -> dict[str, Certainty]:
    """Strict parse of a model answer. Anything not valid under :data:`ANSWER_SCHEMA` raises AnswerInvalid.

    Leading/trailing whitespace is tolerated (tokenizers add it); nothing else is repaired or guessed.
    """
    try:
        data = json.loads(text.strip())
    except (json.JSONDecodeError, TypeError) as exc:
        raise AnswerInvalid(f"answer is not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
    if not isinstance(data, dict):
        raise AnswerInvalid(f"answer is a JSON {type(data).__name__}, not an object")
    labels: dict[str, Certainty] = {}
    for key, value in data.items():
        if key not in ALLOWED:
            raise AnswerInvalid(f"unknown observation key {key!r}")
        try:
            certainty = Certainty(value)
        except ValueError:
            raise AnswerInvalid(f"invalid value for {key}: {value!r}") from None
        if certainty not in ALLOWED[key]:
            raise AnswerInvalid(f"{key} cannot be {certainty.value}")
        labels[key] = certainty
    return {name: labels[name] for name in OBSERVATIONS if name in labels}
