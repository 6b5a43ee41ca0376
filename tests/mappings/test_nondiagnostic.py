"""Text that asserts nothing yields no labels (mappings/nondiagnostic.py), for every labeler."""

from __future__ import annotations

import asyncio

import pytest

from mappings.labels import LabelerInfo, LabelSet, label_texts
from mappings.nondiagnostic import non_diagnostic_reason

NON_DIAGNOSTIC = [
    ("", "empty"),
    ("   \n\n", "empty"),
    ("FINDINGS:\nIMPRESSION:", "empty"),
    ("INDICATION: Pneumonia.\nCOMPARISON: None.", "empty"),
    ("Report pending. Please see PACS.", "pending"),
    ("Dictation to follow.", "pending"),
    ("Preliminary report to follow.", "pending"),
    ("Final report pending radiologist review.", "pending"),
    ("Please see separate report.", "pending"),
    ("Images available in PACS.", "pending"),
    ("ADDENDUM: Findings discussed with Dr. Okafor at 09:55 by telephone.", "communication"),
    ("ADDENDUM:\nCalled to Dr Smith at 14:02.", "communication"),
    ("Dr. Jones was notified by telephone at 10:30.", "communication"),
    ("The referring physician was notified.", "communication"),
    ("I have reviewed the images and agree with the report.", "communication"),
    ("Outside film, no report.", "no-report"),
    ("Outside images loaded for comparison only.", "no-report"),
    ("Film transfer.", "no-report"),
    ("ANNA KLEIN, M.D.\n********FINAL REPORT********\nEXAMINATION: Chest X-ray\nDictated By: Anna Klein, M.D.",
     "empty"),
]

# Near misses: each asserts something, so it is labeled as usual.
DIAGNOSTIC = [
    "No acute findings.",
    "IMPRESSION: No acute cardiopulmonary process.",
    "Normal chest.",
    "Stable.",
    "Unchanged from prior.",
    "Lungs are clear.",
    "Small pneumothorax, discussed with Dr. Smith at 3 p.m.",
    "Findings discussed with Dr. Okafor. Small right pleural effusion.",
    "See PACS for images. Heart size normal.",
    "ADDENDUM: There is also a small left apical pneumothorax.",
    "Report: cardiomegaly.",
    "Outside film reviewed: no pneumothorax.",
    "INDICATION: Pneumonia.\nFINDINGS: Right lower lobe consolidation.",
    "Pending clinical correlation, the opacity may represent atelectasis.",
]


@pytest.mark.parametrize(("text", "kind"), NON_DIAGNOSTIC)
def test_text_that_asserts_nothing(text, kind):
    assert non_diagnostic_reason(text) == f"non-diagnostic:{kind}"


@pytest.mark.parametrize("text", DIAGNOSTIC)
def test_near_misses_are_diagnostic(text):
    assert non_diagnostic_reason(text) is None


class _Recording:
    """Any labeler: records what it is asked, answers No Finding (as a rule labeler does for empty text)."""

    info = LabelerInfo(name="rec", version="1")

    def __init__(self) -> None:
        self.asked: list[str] = []

    async def label_batch_detailed(self, texts):
        self.asked.extend(texts)
        return [LabelSet(labels={"No Finding": "positive"}, labeler=self.info) for _ in texts]


def test_label_texts_never_asks_a_labeler_about_text_that_asserts_nothing():
    labeler = _Recording()
    out = asyncio.run(label_texts(labeler, ["Report pending.", "Lungs are clear.", ""]))
    assert labeler.asked == ["Lungs are clear."]
    assert [o.labels for o in out] == [{}, {"No Finding": "positive"}, {}]
    assert all(o.labeler == labeler.info for o in out)


def test_the_rule_labeler_on_its_own_would_say_no_finding():
    """Why the gate exists: CheXpert's rule sets No Finding when nothing is positive, empty text included."""
    from connector.rules.labeler import RuleLabeler

    (raw,) = asyncio.run(RuleLabeler().label_batch(["Report pending. Please see PACS."]))
    assert raw.labels == {"No Finding": "positive"}
    (gated,) = asyncio.run(label_texts(RuleLabeler(), ["Report pending. Please see PACS."]))
    assert gated.labels == {}
