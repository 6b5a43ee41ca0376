import json

import pytest
from pydantic import ValidationError

from mappings.labels import AnswerInvalid, LabelerInfo, LabelSet
from mappings.prompt import ANSWER_SCHEMA, build_messages, parse_answer, render_answer, render_full_answer
from mappings.terminology import PRESENCE_QUALIFIER, finding_codes
from mappings.vocabulary import OBSERVATIONS, Certainty, decode_csv_value, encode_csv_value, merge

INFO = LabelerInfo(name="test", version="0")


def test_vocabulary_is_chexpert_order():
    assert len(OBSERVATIONS) == 14
    assert OBSERVATIONS[0] == "No Finding" and OBSERVATIONS[-1] == "Support Devices"
    assert OBSERVATIONS.index("Pleural Effusion") == 10


@pytest.mark.parametrize("cell,expected", [("1", Certainty.POSITIVE), ("0.0", Certainty.NEGATIVE), ("-1", Certainty.UNCERTAIN), ("", None), (float("nan"), None)])
def test_csv_round_trip(cell, expected):
    assert decode_csv_value(cell) == expected
    if expected is not None:
        assert decode_csv_value(encode_csv_value(expected)) == expected


def test_csv_rejects_unknown_value():
    with pytest.raises(ValueError):
        decode_csv_value("2")


def test_merge_precedence_positive_over_uncertain_over_negative():
    assert merge(Certainty.NEGATIVE, Certainty.UNCERTAIN) == Certainty.UNCERTAIN
    assert merge(Certainty.POSITIVE, Certainty.UNCERTAIN) == Certainty.POSITIVE
    assert merge(None, Certainty.NEGATIVE) == Certainty.NEGATIVE


def test_labelset_orders_and_validates():
    ls = LabelSet(labels={"Support Devices": Certainty.POSITIVE, "Cardiomegaly": Certainty.NEGATIVE}, labeler=INFO)
    assert list(ls.labels) == ["Cardiomegaly", "Support Devices"]
    assert ls.csv_row()[2] == "0" and ls.csv_row()[13] == "1" and ls.csv_row()[0] == ""
    with pytest.raises(ValidationError):
        LabelSet(labels={"No Finding": Certainty.NEGATIVE}, labeler=INFO)
    with pytest.raises(ValidationError):
        LabelSet(labels={"Heart Attack": Certainty.POSITIVE}, labeler=INFO)


def test_answer_round_trip_and_compactness():
    labels = {"Pleural Effusion": Certainty.NEGATIVE, "Cardiomegaly": Certainty.POSITIVE}
    text = render_answer(labels)
    assert text == '{"Cardiomegaly":"positive","Pleural Effusion":"negative"}'
    assert parse_answer(" " + text + "\n") == {"Cardiomegaly": Certainty.POSITIVE, "Pleural Effusion": Certainty.NEGATIVE}
    assert len(render_full_answer(labels)) > 3 * len(text)


@pytest.mark.parametrize(
    "bad",
    ["", "not json", "[]", '{"Cardiomegaly":"yes"}', '{"Heart":"positive"}', '{"No Finding":"negative"}', '{"Cardiomegaly":"positive"'],
)
def test_parse_answer_is_strict(bad):
    with pytest.raises(AnswerInvalid):
        parse_answer(bad)


def test_schema_matches_vocabulary_and_parser():
    assert list(ANSWER_SCHEMA["properties"]) == list(OBSERVATIONS)
    assert ANSWER_SCHEMA["additionalProperties"] is False
    assert ANSWER_SCHEMA["properties"]["No Finding"]["enum"] == ["positive"]
    json.dumps(ANSWER_SCHEMA)


def test_prompt_contains_report_and_examples():
    msgs = build_messages("Heart size normal.", examples=[("Small effusion.", {"Pleural Effusion": Certainty.POSITIVE})])
    content = msgs[0]["content"]
    assert msgs[0]["role"] == "user"
    assert content.rstrip().endswith("Heart size normal.")
    assert '{"Pleural Effusion":"positive"}' in content


def test_terminology_covers_every_observation():
    codes = finding_codes()
    assert set(codes) == set(OBSERVATIONS)
    assert codes["Cardiomegaly"].snomed_code == "8186001"
    assert codes["Lung Opacity"].snomed_code is None  # no verified concept: local code only
    assert len({c.local_code for c in codes.values()}) == 14
    assert PRESENCE_QUALIFIER[Certainty.UNCERTAIN][0] == "82334004"
