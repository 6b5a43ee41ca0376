"""Dataset builders and the train/validation split."""

from __future__ import annotations

import json

import pytest

from mappings.vocabulary import OBSERVATIONS
from mappings.vocabulary import Certainty as C
from training.data import (DatasetError, Example, load_iu_reports, load_mimic, load_table, silver_label, split,
                           write_jsonl)

HEADER = ["id", "report", *OBSERVATIONS]


def _csv_row(values: list[str]) -> str:
    return ",".join(f'"{v}"' for v in values) + "\n"


def test_csv_table_decodes_chexpert_codes(tmp_path):
    cells = {name: "" for name in OBSERVATIONS} | {"Cardiomegaly": "1", "Edema": "-1.0", "Pneumothorax": "0"}
    path = tmp_path / "t.csv"
    path.write_text(_csv_row(HEADER) + _csv_row(["r1", "Enlarged heart, ? edema, no PTX.", *cells.values()]))
    (ex,) = load_table(path)
    assert ex.id == "r1"
    assert ex.labels == {"Cardiomegaly": C.POSITIVE, "Edema": C.UNCERTAIN, "Pneumothorax": C.NEGATIVE}


def test_jsonl_table_round_trips_through_write_jsonl(tmp_path):
    examples = [Example(id="a", report="No acute disease.", labels={"No Finding": C.POSITIVE}),
                Example(id="b", report="Left rib fracture.", labels={"Fracture": C.POSITIVE, "Pneumothorax": C.NEGATIVE})]
    path = tmp_path / "t.jsonl"
    write_jsonl(examples, path)
    assert load_table(path) == examples


def test_bad_values_and_missing_columns_are_typed_errors(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text(_csv_row(HEADER) + _csv_row(["r1", "text", "2", *[""] * 13]))
    with pytest.raises(DatasetError, match="No Finding"):
        load_table(bad)
    missing = tmp_path / "missing.csv"
    missing.write_text("id,report\nr1,text\n")
    with pytest.raises(DatasetError, match="missing columns"):
        load_table(missing)


def test_mimic_layout_joins_reports_on_study_id(tmp_path):
    root = tmp_path / "files" / "p10" / "p10000032"
    root.mkdir(parents=True)
    (root / "s50414267.txt").write_text("FINDINGS: Small right pleural effusion.\n")
    labels = tmp_path / "mimic-cxr-2.0.0-chexpert.csv"
    header = ["subject_id", "study_id", *OBSERVATIONS]
    row = ["10000032", "50414267"] + ["1.0" if n == "Pleural Effusion" else "" for n in OBSERVATIONS]
    orphan = ["10000032", "59999999"] + [""] * 14  # no report file: skipped
    labels.write_text(",".join(header) + "\n" + ",".join(row) + "\n" + ",".join(orphan) + "\n")
    (ex,) = load_mimic(labels, tmp_path / "files")
    assert ex.id == "s50414267"
    assert ex.report == "FINDINGS: Small right pleural effusion."
    assert ex.labels == {"Pleural Effusion": C.POSITIVE}


def test_iu_reports_exclude_gold_ids_and_empty_reports(tmp_path):
    path = tmp_path / "reports.csv"
    path.write_text(
        "uid,report_id,split,indication,comparison,findings,impression,mesh_major\n"
        '1,CXR1,train,Cough,None.,The lungs are clear.,No acute disease.,normal\n'
        '2,CXR2,train,Pain,,Heart is enlarged.,Cardiomegaly.,Cardiomegaly\n'
        '3,CXR3,train,Pain,,,,normal\n'
    )
    reports = load_iu_reports(path, exclude_uids={"2"})
    assert reports == [("iu-1", "INDICATION: Cough\nCOMPARISON: None.\nFINDINGS: The lungs are clear.\n"
                                "IMPRESSION: No acute disease.")]


def test_silver_labels_come_from_the_rule_labeler():
    from connector.rules.labeler import RuleLabeler

    reports = [("x1", "FINDINGS: There is a large right pleural effusion. No pneumothorax.")]
    (ex,) = silver_label(reports, RuleLabeler())
    assert ex.id == "x1"
    assert ex.labels["Pleural Effusion"] == C.POSITIVE
    assert ex.labels["Pneumothorax"] == C.NEGATIVE


def _corpus(n: int) -> list[Example]:
    return [Example(id=f"r{i}", report=f"Report number {i}. The lungs are clear.") for i in range(n)]


def test_split_is_deterministic_and_order_independent():
    corpus = _corpus(500)
    train1, val1 = split(corpus, 0.1)
    train2, val2 = split(list(reversed(corpus)), 0.1)
    assert {e.id for e in val1} == {e.id for e in val2}
    assert 25 <= len(val1) <= 75  # ~10%
    assert {e.id for e in split(corpus, 0.1, seed=1)[1]} != {e.id for e in val1}


def test_split_never_puts_one_report_text_on_both_sides():
    # IU X-ray repeats normal reports verbatim under different ids; whitespace/case differences too.
    corpus = _corpus(200) + [Example(id=f"dup{i}", report=f"report NUMBER {i}.  The lungs are clear.")
                             for i in range(200)]
    train, val = split(corpus, 0.2)
    norm = lambda e: " ".join(e.report.lower().split())  # noqa: E731
    assert not {norm(e) for e in train} & {norm(e) for e in val}
    assert not {e.id for e in train} & {e.id for e in val}
    assert len(train) + len(val) == len(corpus)


def test_split_on_iu_corpus_has_no_gold_dev_leak(shared_data):
    from training.data import gold_dev_uids

    gold = gold_dev_uids(shared_data / "gold-dev" / "reports.csv")
    reports = load_iu_reports(shared_data / "iu-xray" / "reports.csv", exclude_uids=gold)
    assert len(gold) == 100
    assert not {f"iu-{u}" for u in gold} & {i for i, _ in reports}
    examples = [Example(id=i, report=t) for i, t in reports]
    train, val = split(examples, 0.05)
    assert not {e.report for e in train} & {e.report for e in val}


def test_silver_labels_leave_text_that_asserts_nothing_blank():
    """Training targets follow the serving rule: the teacher is not asked about "report pending" (which the rule
    labeler alone would call No Finding), so the model never learns that."""
    from connector.rules.labeler import RuleLabeler
    from training.data import silver_label

    examples = silver_label([("a", "Report pending. Please see PACS."), ("b", "Lungs are clear. Heart size normal.")],
                            RuleLabeler())
    assert examples[0].labels == {}
    assert examples[1].labels.get("No Finding") is not None
