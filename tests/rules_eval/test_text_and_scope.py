"""Sentence splitting, section skipping and the scope engine's boundaries."""

from __future__ import annotations

import pytest

from connector.rules import label_report
from connector.rules.scope import trigger_word
from connector.rules.text import labeled_regions, lower, split_sentences
from mappings.vocabulary import Certainty

P, N, U = Certainty.POSITIVE, Certainty.NEGATIVE, Certainty.UNCERTAIN


def sentences(text: str) -> list[str]:
    return [text[s.start : s.end] for s in split_sentences(text)]


def test_sentences_keep_decimals_and_split_on_lines() -> None:
    text = "FINDINGS: A 1.5 cm nodule. No effusion!\nIMPRESSION: Nodule.Recommend CT"
    assert sentences(text) == ["A 1.5 cm nodule.", "No effusion!", "Nodule.", "Recommend CT"]


def test_skipped_sections_are_not_labeled() -> None:
    text = (
        "INDICATION: pneumonia?\nCOMPARISON: 2010\nFINDINGS: Lungs are clear.\nHISTORY: effusion\nIMPRESSION: Normal."
    )
    assert sentences(text) == ["Lungs are clear.", "Normal."]
    # text before any header is labeled; unknown "Label:" prefixes are text, not headers
    assert sentences("Note: small effusion.") == ["Note: small effusion."]
    assert labeled_regions("no headers at all") == [(0, 17)]


def test_lower_keeps_offsets() -> None:
    text = "İ Heart"  # "İ".lower() is two characters
    assert len(lower(text)) == len(text)


def test_evidence_offsets_survive_odd_whitespace_and_case() -> None:
    text = "FINDINGS:   LARGE   left  PLEURAL\tEFFUSION.  "
    result = label_report(text)
    assert result.labels["Pleural Effusion"] is P
    (span,) = result.evidence["Pleural Effusion"]
    assert text[span.start : span.end] == "LARGE   left  PLEURAL\tEFFUSION."


@pytest.mark.parametrize("profile", ["chexpert", "improved"])
@pytest.mark.parametrize(
    ("sentence", "observation", "expected"),
    [
        # termination terms end negation scope
        ("No pneumothorax but there is a small effusion.", "Pleural Effusion", P),
        ("Opacity which may represent atelectasis.", "Lung Opacity", P),
        # a backward cue does not reach past a verb: the heart is not cleared by "are clear"
        ("The heart is enlarged and the lungs are clear.", "Cardiomegaly", P),
        # after the negated clause's verb, a comma starts a new clause
        ("No pneumothorax is seen, left effusion is present.", "Pleural Effusion", P),
        # a negated list stays negated
        ("No focal consolidation, pleural effusion, or pneumothorax.", "Pneumothorax", N),
        # pseudo-negation: "no change" is not a negation
        ("No change in the small left pleural effusion.", "Pleural Effusion", P),
        # a post-posed hedge needs a copula or adjacency: "X, possible Y" leaves X positive
        ("Right lower lobe opacity, possible pneumonia.", "Lung Opacity", P),
        ("Pneumonia suspected.", "Pneumonia", U),
        ("Pneumothorax is possible.", "Pneumothorax", U),
        # separate sentences do not share scope
        ("No pneumothorax. Small effusion.", "Pleural Effusion", P),
    ],
)
def test_scope_boundaries(profile: str, sentence: str, observation: str, expected: Certainty) -> None:
    assert label_report(sentence, profile).labels.get(observation) is expected


def test_trigger_words_are_only_taken_when_mandatory() -> None:
    assert trigger_word("no evidence of") == "no"
    assert trigger_word("not (?:significantly|markedly) enlarged") == "not"
    assert trigger_word("(?:at )?(?:the )?upper limits? of normal") is None
    assert trigger_word("limits? of normal") is None
    # a lookbehind after the word consumes nothing: the word is still needed
    assert trigger_word(r"xxxx(?<=,\sxxxx)") == "xxxx"
    assert trigger_word(r"xxxx(?<!mild,\sxxxx)") == "xxxx"


def test_overlong_sentences_are_cut_at_whitespace() -> None:
    from connector.rules.text import MAX_SENTENCE_CHARS

    text = "FINDINGS: " + "stable appearance of the chest " * 100 + "with a small left pleural effusion"
    spans = split_sentences(text)
    assert len(spans) > 1
    assert all(s.end - s.start <= MAX_SENTENCE_CHARS for s in spans)
    assert all(text[s.start] != " " and text[s.end - 1] != " " for s in spans)
    assert label_report(text).labels["Pleural Effusion"] is P


def test_chexpert_leading_space_phrases_keep_their_meaning() -> None:
    # "_mediastinum" / "_line_" need a space before them, as on CheXpert's whitespace-collapsed sentences
    assert label_report("Widened  mediastinum.", "chexpert").labels["Enlarged Cardiomediastinum"] is P
    assert "Enlarged Cardiomediastinum" not in label_report("Mediastinum widened.", "chexpert").labels
    assert label_report("Right PICC line  in place.", "chexpert").labels["Support Devices"] is P
    assert "Support Devices" not in label_report("Midline trachea.", "chexpert").labels


def test_bare_headings_without_colon() -> None:
    text = "INDICATION\nRule out pneumonia.\nFINDINGS\nSmall left effusion.\nIMPRESSION\nEffusion."
    assert sentences(text) == ["Small left effusion.", "Effusion."]
    assert "Pneumonia" not in label_report(text).labels
