"""Mention rules: which text spans mention which observation.

CheXpert's phrase lists (data/chexpert/phrases) are regular-expression SUBSTRINGS with "_" for a space; a match
overlapping an unmention phrase of the same observation is dropped. Besides the 14 observations, the
"no_finding.txt" list names other abnormalities that only block No Finding (key :data:`OTHER`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from importlib import resources

from mappings.vocabulary import NO_FINDING, OBSERVATIONS, Certainty

OTHER = "Other Finding"  # pseudo-observation: abnormalities outside the 14 that block No Finding
CARDIOMEGALY = "Cardiomegaly"
ENLARGED_CARDIOMEDIASTINUM = "Enlarged Cardiomediastinum"


@dataclass(frozen=True)
class MentionRule:
    """A compiled mention pattern for one observation.

    ``fixed``: the certainty is given by the phrase itself ("lungs are clear" -> Lung Opacity negative) and the
    scope engine is not asked. ``soft``: a mention that is uncertain unless negated (CheXpert's
    "vascular congestion" / "indistinctness" rule).
    """

    observation: str
    regex: re.Pattern[str]
    unmention: re.Pattern[str] | None = None
    fixed: Certainty | None = None
    soft: bool = False
    # A structure, not a finding ("heart", "mediastinum", "pulmonary vasculature"): it is a negative mention when
    # called normal, a hedge when hedged, but positive only when its sentence says something abnormal about it
    # (``abnormal`` regex); otherwise it is no mention at all ("the heart and lungs have XXXX in the interval").
    abnormal: re.Pattern[str] | None = None


def _file_name(observation: str) -> str:
    return observation.lower().replace(" ", "_") + ".txt"


def load_chexpert_phrases(kind: str) -> dict[str, list[str]]:
    """CheXpert phrase lists by observation (``kind`` is "mention" or "unmention"); OTHER for no_finding.txt."""
    base = resources.files("connector.rules").joinpath("data", "chexpert", "phrases", kind)
    out: dict[str, list[str]] = {}
    for observation in OBSERVATIONS:
        path = base.joinpath(_file_name(observation))
        if not path.is_file():
            continue
        phrases = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        out[OTHER if observation == NO_FINDING else observation] = phrases
    return out


def chexpert_phrase_regex(phrase: str) -> str:
    """CheXpert phrase -> regex fragment. "_" is a space; any whitespace run matches a space (CheXpert collapses
    whitespace while cleaning, we keep the original text so offsets stay exact)."""
    return phrase.replace("_", " ").replace(" ", r"\s+")


def positional_unmentions(mentions: Iterable[str], strip_the: bool) -> list[str]:
    """CheXpert's generated unmentions for heart/mediastinum phrases ("over the left heart" is a location)."""
    prefixes = [p + loc for p in ("over the", "overly the", "in the") for loc in ("", " superior", " left", " right")]
    out = []
    for phrase in mentions:
        if strip_the:
            if phrase in ("cardiomegaly", "cardiac enlargement"):
                continue
            phrase = phrase.replace("the ", "")
        out.extend(f"{prefix} {phrase}" for prefix in prefixes)
    return out


def alternation(fragments: Iterable[str]) -> str:
    return "|".join(sorted(set(fragments), key=len, reverse=True))


def compile_rules(
    mentions: Mapping[str, Iterable[str]],
    unmentions: Mapping[str, Iterable[str]],
    soft: Mapping[str, Iterable[str]] = {},
    fixed: Iterable[tuple[str, str, Certainty]] = (),
    structures: Iterable[tuple[str, Iterable[str], str, bool]] = (),
) -> list[MentionRule]:
    """Build rules from regex fragments (already converted with :func:`chexpert_phrase_regex` where needed)."""
    rules: list[MentionRule] = []
    for observation, fragments in mentions.items():
        fragments = list(fragments)
        if not fragments:
            continue
        un = list(unmentions.get(observation, ()))
        rules.append(
            MentionRule(
                observation,
                re.compile(alternation(fragments)),
                re.compile(alternation(un)) if un else None,
            )
        )
    for observation, fragments in soft.items():
        fragments = list(fragments)
        if fragments:
            rules.append(MentionRule(observation, re.compile(alternation(fragments)), soft=True))
    for observation, fragment, certainty in fixed:
        rules.append(MentionRule(observation, re.compile(fragment), fixed=certainty))
    for observation, fragments, abnormal, is_soft in structures:
        un = list(unmentions.get(observation, ()))
        rules.append(
            MentionRule(
                observation,
                re.compile(alternation(fragments)),
                re.compile(alternation(un)) if un else None,
                soft=is_soft,
                abnormal=re.compile(abnormal),
            )
        )
    return rules
