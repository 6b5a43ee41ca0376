"""Token-level format: prompt tokens are the chat-templated shared prompt, loss covers the answer only, and the
compact answer is at most a third of a full 14-key answer in Qwen tokens."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from mappings.labels import ReportTooLong
from mappings.prompt import build_messages, parse_answer, render_answer, render_full_answer
from mappings.vocabulary import OBSERVATIONS
from mappings.vocabulary import Certainty as C
from training.format import answer_ids, encode_example, prompt_ids
from training.models import end_of_turn_id, qwen_tokenizer_dir

# Typical chest X-ray label sets (mentions per report in IU X-ray silver labels: median 4-5).
LABEL_SETS = [
    {"No Finding": C.POSITIVE, "Cardiomegaly": C.NEGATIVE, "Pneumothorax": C.NEGATIVE, "Pleural Effusion": C.NEGATIVE},
    {"Cardiomegaly": C.POSITIVE, "Edema": C.UNCERTAIN, "Pleural Effusion": C.POSITIVE, "Support Devices": C.POSITIVE},
    {"Lung Opacity": C.POSITIVE, "Pneumonia": C.UNCERTAIN, "Consolidation": C.NEGATIVE, "Pneumothorax": C.NEGATIVE,
     "Pleural Effusion": C.NEGATIVE},
    {"Enlarged Cardiomediastinum": C.NEGATIVE, "Cardiomegaly": C.NEGATIVE, "Lung Opacity": C.NEGATIVE,
     "Atelectasis": C.POSITIVE, "Fracture": C.POSITIVE},
    {"No Finding": C.POSITIVE},
]


@pytest.fixture(scope="module")
def tokenizer():
    tok = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir()))
    return tok


def test_compact_answer_is_at_most_a_third_of_the_full_answer_at_four_mentions(tokenizer):
    # The ratio is roughly (mentioned observations) / 14: the 1/3 target holds up to about 4-5 mentions a report.
    compact = sum(len(tokenizer(render_answer(s))["input_ids"]) for s in LABEL_SETS)
    full = sum(len(tokenizer(render_full_answer(s))["input_ids"]) for s in LABEL_SETS)
    assert compact * 3 <= full, (compact, full)


def test_example_is_prompt_then_answer_with_loss_mask_on_the_answer_only(tokenizer):
    report = "FINDINGS: Mild cardiomegaly. No effusion."
    labels = LABEL_SETS[1]
    row = encode_example(tokenizer, report, labels, max_length=1024)
    prompt = prompt_ids(tokenizer, report)
    n_prompt = len(prompt)
    assert row["input_ids"][:n_prompt] == prompt
    assert row["completion_mask"] == [0] * n_prompt + [1] * (len(row["input_ids"]) - n_prompt)
    answer = row["input_ids"][n_prompt:]
    assert answer[-1] == end_of_turn_id(tokenizer) == tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert parse_answer(tokenizer.decode(answer[:-1])) == labels
    # The prompt is the model's own chat template around the shared messages, ending at the assistant turn.
    text = tokenizer.decode(prompt)
    assert text == tokenizer.apply_chat_template(build_messages(report), add_generation_prompt=True, tokenize=False)
    assert text.endswith("<|im_start|>assistant\n") and report in text


def test_empty_label_set_is_an_empty_object_answer(tokenizer):
    ids = answer_ids(tokenizer, {})
    assert tokenizer.decode(ids[:-1]) == "{}"


def test_too_long_example_is_refused_not_truncated(tokenizer):
    report = "FINDINGS: " + "Stable appearance of the chest. " * 100
    with pytest.raises(ReportTooLong):
        encode_example(tokenizer, report, LABEL_SETS[0], max_length=256)


def test_full_answer_has_every_key(tokenizer):
    # Guards the measurement above: the "full" format really carries all 14 keys.
    import json

    assert list(json.loads(render_full_answer(LABEL_SETS[4]))) == list(OBSERVATIONS)


def test_compact_answer_ratio_on_iu_silver_labels(shared_data, tokenizer):
    """Measured on the real corpus (IU X-ray reports labeled by the rule labeler): about 0.41, above the 1/3
    target, because the rules record about 5.5 mentions a report (many explicit negatives). Bound it so a
    format regression shows, and say the number in docs/TRAINING.md rather than pretend the target is met."""
    from connector.rules.labeler import RuleLabeler
    from training.data import load_iu_reports, silver_label

    reports = load_iu_reports(shared_data / "iu-xray" / "reports.csv")[:400]
    examples = silver_label(reports, RuleLabeler())
    compact = sum(len(tokenizer(render_answer(e.labels))["input_ids"]) for e in examples)
    full = sum(len(tokenizer(render_full_answer(e.labels))["input_ids"]) for e in examples)
    assert compact / full < 0.45, (compact / len(examples), full / len(examples))
