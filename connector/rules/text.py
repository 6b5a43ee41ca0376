"""Report text -> lower-cased text plus labelable sentence spans.

Nothing is rewritten in place: every span the labeler reports is a [start, end) range of the ORIGINAL report, so
evidence can be carried into FHIR without copying text. CheXpert's cleaning steps that change characters
("and/or" -> "or", "X/Y" -> "X or Y", extra spaces) are handled by the matchers instead (whitespace-tolerant
phrase regexes, "/" as an "or" cue), which keeps offsets exact and the hot path free of string rebuilding.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Section headers. Only the text under a skipped header is ignored; text before any header is labeled.
_HEADER = re.compile(
    r"^[ \t]*(?P<name>[A-Za-z][A-Za-z /&]{1,40}?)[ \t]*:", re.MULTILINE
)
# Sections that never hold findings of this exam (guidelines: "the INDICATION is not a finding").
SKIPPED_SECTIONS: frozenset[str] = frozenset(
    {
        "indication",
        "indications",
        "history",
        "clinical history",
        "patient history",
        "reason for exam",
        "reason for examination",
        "reason for study",
        "clinical indication",
        "clinical information",
        "comparison",
        "comparisons",
        "comparison exam",
        "technique",
        "examination",
        "exam",
    }
)
# Known labelable headers: a header is only treated as one when it is known, so "Note: ..." inside findings
# stays text.
_LABELED_SECTIONS: frozenset[str] = frozenset(
    {"findings", "impression", "conclusion", "conclusions", "findings and impression", "addendum", "report", "opinion"}
)

# Sentence ends: . ! ? before whitespace (so "1.5 cm" stays whole) or glued to a capitalised word, or a line break.
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|[.!?]+(?=[A-Z][a-z])|\n+")


@dataclass(frozen=True, slots=True)
class Sentence:
    start: int
    end: int


def lower(text: str) -> str:
    """Lower-case without changing length (a few Unicode characters grow under str.lower)."""
    low = text.lower()
    if len(low) == len(text):
        return low
    return "".join(c if len(c.lower()) != 1 else c.lower() for c in text)


def labeled_regions(text: str, skip_sections: frozenset[str] = SKIPPED_SECTIONS) -> list[tuple[int, int]]:
    """[start, end) regions of ``text`` that are labeled: everything except the bodies of skipped sections."""
    regions: list[tuple[int, int]] = []
    cursor = 0
    skipping = False
    for m in _HEADER.finditer(text):
        name = " ".join(m.group("name").lower().split())
        if name not in skip_sections and name not in _LABELED_SECTIONS:
            continue
        if not skipping and m.start() > cursor:
            regions.append((cursor, m.start()))
        skipping = name in skip_sections
        cursor = m.end()
    if not skipping and cursor < len(text):
        regions.append((cursor, len(text)))
    return regions


def split_sentences(text: str, skip_sections: frozenset[str] = SKIPPED_SECTIONS) -> list[Sentence]:
    """Sentence spans inside the labeled regions, trimmed of surrounding whitespace; empty ones dropped."""
    sentences: list[Sentence] = []
    for r_start, r_end in labeled_regions(text, skip_sections):
        start = r_start
        for m in _SENTENCE_END.finditer(text, r_start, r_end):
            _append(text, start, m.end(), sentences)
            start = m.end()
        _append(text, start, r_end, sentences)
    return sentences


def _append(text: str, start: int, end: int, out: list[Sentence]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    # A sentence needs at least one letter; "." or "2." alone carries nothing.
    if end > start and any(c.isalpha() for c in text[start:end]):
        out.append(Sentence(start, end))
