"""Each guideline-driven change of the improved profile, shown on a sentence (and, where it differs, what the
faithful profile does with the same sentence)."""

from __future__ import annotations

import pytest

from connector.rules import label_report
from mappings.vocabulary import Certainty

P, N, U = Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN


def lab(text: str, observation: str, profile: str = "improved") -> Certainty | None:
    return label_report(text, profile).labels.get(observation)


CASES = [
    # -- mention fixes ---------------------------------------------------------------------------------------
    ("tube-not-tuberculosis", "Positive PPD, evaluate for tuberculosis.", "Support Devices", None, P),
    ("tubes-still-devices", "Chest tubes in place.", "Support Devices", P, P),
    ("plate-not-platelike", "Platelike atelectasis at the left base.", "Support Devices", None, P),
    ("plate-hardware", "Plate and screws in the left clavicle.", "Support Devices", P, P),
    ("markers-not-devices", "Nipple markers are noted.", "Support Devices", None, P),
    ("septal-lines-not-devices", "Kerley B lines at the bases.", "Support Devices", None, P),
    ("surgical-clips", "Surgical clips in the right upper quadrant.", "Support Devices", P, None),
    ("sternotomy-wires", "Median sternotomy wires are intact.", "Support Devices", P, None),
    ("stent", "Coronary artery stent.", "Support Devices", P, None),
    ("heart-structure-enlarged", "The heart is enlarged.", "Cardiomegaly", P, P),
    ("heart-structure-no-statement", "The heart and lungs have XXXX XXXX in the interval.", "Cardiomegaly", None, P),
    ("cardiomediastinal-includes-heart", "Normal cardiomediastinal silhouette.", "Cardiomegaly", N, None),
    ("cardiac-and-mediastinal-contours", "Cardiac and mediastinal contours are within normal limits.", "Cardiomegaly", N, None),
    ("mediastinum-location", "Postoperative changes are noted in the mediastinum.", "Enlarged Cardiomediastinum", None, P),
    ("mediastinum-widened", "The mediastinum is widened.", "Enlarged Cardiomediastinum", P, P),
    ("size-and-contour-not-ec", "The heart is normal in size and contour.", "Enlarged Cardiomediastinum", None, P),
    ("overlying-cardiac-silhouette", "Density overlying the cardiac silhouette, likely hiatal hernia.", "Cardiomegaly", None, P),
    ("right-heart-border", "Opacity obscures the right heart border.", "Cardiomegaly", None, None),
    ("lungs-are-clear", "The lungs are clear.", "Lung Opacity", N, None),
    ("clear-lungs", "Well-expanded and clear lungs.", "Lung Opacity", N, None),
    ("haziness", "Haziness at the right base.", "Lung Opacity", P, None),
    ("calcified-nodule", "Calcified pulmonary nodule in the left midlung.", "Lung Lesion", None, P),
    ("nodule-granuloma", "Dense nodule in the right base suggests a previous granulomatous process.", "Lung Lesion", None, P),
    ("nodule-not-calcified", "9 mm nodule that is not definitively calcified.", "Lung Lesion", P, P),
    ("congestion-is-edema", "Pulmonary vascular congestion.", "Edema", P, U),
    ("normal-vascularity", "Normal pulmonary vascularity.", "Edema", N, None),
    ("engorged-vasculature", "The pulmonary vasculature is engorged.", "Edema", U, None),
    ("vasculature-other", "Calcified vasculature.", "Edema", None, None),
    ("pleural-plaques", "Calcified pleural plaques.", "Pleural Other", P, None),
    ("apical-cap", "Right apical pleural cap.", "Pleural Other", P, None),
    ("compression-deformity", "Mild compression deformity of T12.", "Fracture", P, None),
    ("loss-of-height", "Loss of vertebral body height at L1.", "Fracture", P, None),
    ("vertebral-collapse-not-atelectasis", "Vertebral body collapse at T8.", "Atelectasis", None, P),
    # -- cue changes ------------------------------------------------------------------------------------------
    ("history-is-present", "History of right rib fracture.", "Fracture", P, N),
    ("likely", "Likely atelectasis.", "Atelectasis", U, P),
    ("probably", "Probably scarring.", "Lung Opacity", U, P),
    ("suggestive-of", "Findings suggestive of pneumonia.", "Pneumonia", U, P),
    ("upper-limits-of-normal", "The heart is upper limits of normal in size.", "Cardiomegaly", U, N),
    ("borderline-after", "Heart size is borderline.", "Cardiomegaly", U, P),
    ("differential-list", "Differential diagnosis is XXXX and includes asymmetric pulmonary edema, inflammation.", "Edema", U, P),
    ("of-normal-size", "Heart and mediastinum of normal size and contour.", "Cardiomegaly", N, None),
    ("not-significantly-enlarged", "The heart is not significantly enlarged.", "Cardiomegaly", N, P),
    ("stable-after-copula", "Heart size is stable.", "Cardiomegaly", U, U),
    ("slash-alternatives", "Minimal bibasal subsegmental atelectasis/scar.", "Atelectasis", U, U),
    ("redacted-adverb", "Heart size is XXXX within normal limits.", "Cardiomegaly", N, N),
]


@pytest.mark.parametrize(
    ("sentence", "observation", "improved", "chexpert"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_improved_rule(sentence: str, observation: str, improved: Certainty | None, chexpert: Certainty | None) -> None:
    assert lab(sentence, observation) is improved
    assert lab(sentence, observation, "chexpert") is chexpert


def test_explicit_negative_beats_stable_silhouette_hedge() -> None:
    text = "Stable cardiomediastinal silhouette. Heart size is normal."
    labels = label_report(text).labels
    assert labels["Cardiomegaly"] is N  # guidelines: 0 when heart size is also called normal
    assert labels["Enlarged Cardiomediastinum"] is U
    assert label_report("Stable cardiomediastinal silhouette.").labels["Cardiomegaly"] is U


def test_chf_no_longer_implies_cardiomegaly() -> None:
    labels = label_report("Findings consistent with CHF.").labels
    assert labels["Edema"] is P and "Cardiomegaly" not in labels


@pytest.mark.parametrize(
    "sentence",
    ["Low lung volumes.", "Tortuous thoracic aorta.", "Old right rib deformities.", "Mild dextro curvature of the spine."],
)
def test_other_abnormalities_block_no_finding(sentence: str) -> None:
    assert lab(sentence + " No pneumothorax.", "No Finding") is None


def test_devices_do_not_block_no_finding() -> None:
    assert lab("Left-sided defibrillator in place. Lungs are clear.", "No Finding") is P
    assert lab("Left-sided defibrillator in place. Lungs are clear.", "No Finding", "chexpert") is None


def test_hedged_negative_is_negative() -> None:
    assert lab("No definite pleural effusion.", "Pleural Effusion") is N
    assert lab("No obvious pneumothorax.", "Pneumothorax") is N
    assert lab("No definite pleural effusion.", "Pleural Effusion", "chexpert") is U


def test_later_cue_interrupts_earlier_scope() -> None:
    # the second "no" decides effusion, not the first "no definite" (chexpert profile: pre-negation uncertainty)
    assert lab("No definite consolidation, no pleural effusion.", "Pleural Effusion", "chexpert") is N
    # a hedge after a negation governs what follows it
    assert lab("No pneumothorax, possible small left effusion.", "Pleural Effusion") is U
    # but "or" continues the negated list, and "no X to suggest Y" stays negative
    assert lab("No pneumothorax or pleural effusion.", "Pleural Effusion") is N
    assert lab("No focal opacity to suggest pneumonia.", "Pneumonia") is N
