"""benchmarks/agreement_policy.py: the two ensemble policies scored in docs/EVALUATION.md (issue 16)."""

from __future__ import annotations

import json

import pandas as pd

from benchmarks.agreement_policy import agree, better_on_dev, pick
from mappings.vocabulary import OBSERVATIONS


def _frame(rows: dict[str, dict[str, str]]) -> pd.DataFrame:
    return pd.DataFrame([{name: labels.get(name, "") for name in OBSERVATIONS} for labels in rows.values()],
                        index=pd.Index(list(rows), name="id"))


RULES = _frame({"a": {"Cardiomegaly": "1", "Edema": "0"}, "b": {"Pneumonia": "-1"}, "c": {"Fracture": "1"}})
# "c" is missing: the model failed on it, so no policy may label it.
LLM = _frame({"a": {"Cardiomegaly": "1", "Edema": "1"}, "b": {"Pneumonia": "-1", "Atelectasis": "1"}})


def test_agree_keeps_only_cells_both_labelers_give_and_drops_reports_the_model_failed() -> None:
    out = agree(RULES, LLM)
    assert list(out.index) == ["a", "b"]
    assert out.loc["a", "Cardiomegaly"] == "1"
    assert out.loc["a", "Edema"] == ""          # 0 vs 1: disagreement is not published
    assert out.loc["b", "Pneumonia"] == "-1"
    assert out.loc["b", "Atelectasis"] == ""    # only the model mentions it


def test_pick_takes_the_model_only_for_observations_it_won_on_dev(tmp_path) -> None:
    def obs(f1: dict[str, float]) -> dict:
        return {"observations": {name: {"weighted_f1": f1.get(name, 0.9)} for name in OBSERVATIONS}}
    metrics = tmp_path / "metrics.json"
    # Edema: the model is better; Atelectasis: a tie goes to the rules.
    metrics.write_text(json.dumps({"labelers": {"rules-improved": obs({"Edema": 0.5}),
                                                "llm": obs({"Edema": 0.8})}}))
    use_llm = better_on_dev(metrics, "rules-improved", "llm")
    assert use_llm == {"Edema"}
    out = pick(RULES, LLM, use_llm)
    assert out.loc["a", "Edema"] == "1" and out.loc["b", "Atelectasis"] == ""
    assert out.loc["a", "Cardiomegaly"] == "1"


def test_an_unreadable_label_file_is_one_line_not_a_traceback(tmp_path) -> None:
    import pytest

    from benchmarks.agreement_policy import read_labels
    bad = tmp_path / "labels.csv"
    bad.write_bytes(b"\x00\xffnot,a\nlabel,file\n")
    for path in (tmp_path / "missing.csv", bad):
        with pytest.raises(SystemExit, match="label file"):
            read_labels(path)
