"""The rule labeler's public API: pure function, async Labeler, evidence spans."""

from __future__ import annotations

import pytest

from connector.rules import RuleLabeler, label_report
from mappings.labels import Labeler
from mappings.vocabulary import Certainty

REPORT = (
    "INDICATION: Cough, rule out pneumonia.\n"
    "FINDINGS: Heart size is normal. There is a small left pleural effusion. No pneumothorax.\n"
    "IMPRESSION: Small left effusion."
)


def test_label_report_is_pure_and_sync() -> None:
    first = label_report(REPORT)
    assert first == label_report(REPORT)
    assert first.labels["Pleural Effusion"] is Certainty.POSITIVE
    assert first.labels["Cardiomegaly"] is Certainty.NEGATIVE
    assert first.labels["Pneumothorax"] is Certainty.NEGATIVE
    # "rule out pneumonia" is in the INDICATION: not a finding.
    assert "Pneumonia" not in first.labels
    assert "No Finding" not in first.labels


def test_evidence_spans_point_at_deciding_sentences() -> None:
    result = label_report(REPORT)
    spans = result.evidence["Pleural Effusion"]
    texts = [REPORT[s.start : s.end] for s in spans]
    assert texts == ["There is a small left pleural effusion.", "Small left effusion."]
    (card,) = result.evidence["Cardiomegaly"]
    assert REPORT[card.start : card.end] == "Heart size is normal."


async def test_rule_labeler_is_a_labeler() -> None:
    labeler = RuleLabeler()
    assert isinstance(labeler, Labeler)
    assert labeler.info.name == "rules"
    assert labeler.info.version.endswith("+improved")
    out = await labeler.label_batch([REPORT, "No acute cardiopulmonary abnormality."])
    assert len(out) == 2
    assert out[0] == label_report(REPORT)
    assert out[1].labels == {"No Finding": Certainty.POSITIVE}
    assert await labeler.ready()


def test_profiles_selectable_and_validated() -> None:
    assert RuleLabeler(profile="chexpert").info.version.endswith("+chexpert")
    with pytest.raises(ValueError, match="unknown rule profile"):
        RuleLabeler(profile="nope")
    with pytest.raises(ValueError):
        label_report("x", profile="nope")


def test_empty_and_header_only_reports() -> None:
    # Nothing labelable: CheXpert's rule sets No Finding when nothing is positive or uncertain.
    assert label_report("").labels == {"No Finding": Certainty.POSITIVE}
    assert label_report("INDICATION: chest pain, pneumonia?").labels == {"No Finding": Certainty.POSITIVE}
