"""The faithful CheXpert-style profile: phrase lists, unmention, the three pattern stages, aggregation."""

from __future__ import annotations

import pytest

from connector.rules import label_report
from mappings.vocabulary import Certainty

P, N, U = Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN


def lab(text: str, observation: str) -> Certainty | None:
    return label_report(text, "chexpert").labels.get(observation)


@pytest.mark.parametrize(
    ("sentence", "observation", "expected"),
    [
        # mention phrases are substrings: "atelecta" finds "atelectatic"
        ("Bibasilar atelectatic changes.", "Atelectasis", P),
        # unmention: "pericardial effusion" is not a pleural effusion
        ("Small pericardial effusion.", "Pleural Effusion", None),
        ("Calcified nodule in the right upper lobe.", "Lung Lesion", None),
        # generated positional unmention: "over the heart" is a location
        ("Opacity projecting over the heart.", "Cardiomegaly", None),
        # pre-negation uncertainty beats negation
        ("Cannot exclude a small left pleural effusion.", "Pleural Effusion", U),
        ("No new consolidation.", "Consolidation", U),
        ("Pneumothorax is not excluded.", "Pneumothorax", U),
        # negation: forward and backward cues
        ("No pneumothorax or pleural effusion.", "Pleural Effusion", N),
        ("There is no evidence of pneumonia.", "Pneumonia", N),
        ("Heart size is normal.", "Cardiomegaly", N),
        ("Normal heart size.", "Cardiomegaly", N),
        ("The heart is not enlarged.", "Cardiomegaly", N),
        ("The previously seen effusion has resolved.", "Pleural Effusion", N),
        # post-negation uncertainty
        ("Opacity may represent atelectasis.", "Atelectasis", U),
        ("Possible right lower lobe pneumonia.", "Pneumonia", U),
        ("Atelectasis versus pneumonia.", "Pneumonia", U),
        ("Atelectasis or pneumonia at the left base.", "Atelectasis", U),
        ("Borderline heart size.", "Cardiomegaly", U),
        ("Stable cardiac silhouette.", "Cardiomegaly", U),
        # CheXpert: vascular congestion is uncertain Edema unless negated
        ("Mild pulmonary vascular congestion.", "Edema", U),
        ("No vascular congestion.", "Edema", N),
        # CheXpert's substring false hit that the improved profile fixes
        ("No evidence of tuberculosis.", "Support Devices", N),
        # "history of" is a CheXpert negation pattern
        ("History of pneumonia.", "Pneumonia", N),
    ],
)
def test_chexpert_stages(sentence: str, observation: str, expected: Certainty | None) -> None:
    assert lab(sentence, observation) is expected


def test_aggregation_precedence_positive_over_uncertain_over_negative() -> None:
    assert lab("No effusion on the left. Possible small right effusion.", "Pleural Effusion") is U
    assert lab("Possible left effusion. Small right pleural effusion.", "Pleural Effusion") is P


def test_chf_implies_uncertain_cardiomegaly() -> None:
    labels = label_report("Findings consistent with CHF.", "chexpert").labels
    assert labels["Edema"] is P
    assert labels["Cardiomegaly"] is U


def test_no_finding_rule() -> None:
    assert lab("No acute cardiopulmonary process. No pleural effusion.", "No Finding") is P
    # support devices do not block No Finding
    assert lab("Endotracheal tube in good position. No pneumothorax.", "No Finding") is P
    # an uncertain finding blocks it
    assert lab("Possible small effusion.", "No Finding") is None
    # an "other finding" from no_finding.txt blocks it too, and is not itself an observation
    labels = label_report("Mild emphysema.", "chexpert").labels
    assert labels == {}
    # a negated other finding does not block
    assert lab("No emphysema.", "No Finding") is P
