"""Does a report text assert anything? Text with no diagnostic statement yields no labels at all.

"Report pending. Please see PACS.", an empty text, an addendum that only records a phone call, "outside films, no
report": a labeler shown such a text has nothing to read, yet a rule labeler answers No Finding (CheXpert's rule: no
positive mention) and a model may answer anything. So the decision is taken here, once, before any labeler is asked,
and shared by every backend (rules, in-process model, model servers): the pipeline does not label such a report and
publishes nothing for it, and `radlabel label` writes an all-blank row.

The rule (docs/LABELING_RULES.md): a text asserts something when at least one sentence outside context sections
(indication, history, comparison, technique, examination) is neither furniture (headings, banners, sign-offs) nor a
whole-sentence match of the non-diagnostic patterns in data/non_diagnostic.yaml. "No acute findings." is diagnostic;
"Findings discussed with Dr X." is not; "Small pneumothorax, discussed with Dr X." is, since patterns must match the
whole sentence.
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib import resources

import yaml

__all__ = ["NON_DIAGNOSTIC_VERSION", "non_diagnostic_reason"]

_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+|\n")
# A heading at the start of a line: "FINDINGS:", "Impression -", "ADDENDUM:"; the rest of the line is content.
_HEADING = re.compile(r"^\s*(?P<name>[A-Za-z][A-Za-z /&'()-]{0,40}?)\s*(?::|\s-\s|-$)\s*(?P<rest>.*)$")
_LETTERS = re.compile(r"[A-Za-z]{2,}")
_TRAILING = re.compile(r"[\s.!?;:,*_-]+$")
_LEADING = re.compile(r"^[\s*_\-#>•]+")
# Full stops that end no sentence ("Dr. Smith", "M.D.", "3 p.m."): dropped before splitting.
_ABBREVIATION = re.compile(r"\b(?:(dr|mr|mrs|ms|prof|st|approx|vs|pt|e\.g|i\.e)\.|(m)\.(d)\.|([ap])\.(m)\.)",
                           re.IGNORECASE)


class _Rules:
    def __init__(self, data: dict) -> None:
        self.version = str(data["version"])
        self.context = re.compile(r"^(?:" + "|".join(data["context_headings"]) + r")$", re.IGNORECASE)
        self.report = re.compile(r"^(?:" + "|".join(data["report_headings"]) + r")$", re.IGNORECASE)
        self.furniture = re.compile("|".join(f"(?:{p})" for p in data["furniture"]), re.IGNORECASE)
        # One pattern for every kind of non-diagnostic sentence, a named group per kind: one match call a sentence.
        self.kinds = {f"k{i}": reason for i, reason in enumerate(["empty", *data["sentences"]])}
        groups = [f"(?P<k0>{'|'.join(f'(?:{p})' for p in data['furniture'])})"]
        for i, patterns in enumerate(data["sentences"].values(), start=1):
            groups.append(f"(?P<k{i}>^(?:" + "|".join(f"(?:{p})" for p in patterns) + r")$)")
        self.sentence = re.compile("|".join(groups), re.IGNORECASE)


@lru_cache(maxsize=1)
def _rules() -> _Rules:
    text = resources.files("mappings").joinpath("data/non_diagnostic.yaml").read_text(encoding="utf-8")
    return _Rules(yaml.safe_load(text))


NON_DIAGNOSTIC_VERSION: str = _rules().version


def non_diagnostic_reason(text: str | None) -> str | None:
    """None when the text holds a diagnostic statement; else why not, as a PHI-free reason code:
    ``non-diagnostic:empty`` (nothing but headings, context and furniture), ``non-diagnostic:pending``,
    ``non-diagnostic:communication`` or ``non-diagnostic:no-report`` (the kind of the first non-diagnostic
    sentence met)."""
    rules = _rules()
    seen: str | None = None
    in_context = False
    for raw_line in (text or "").splitlines():
        line = raw_line.strip()
        if not line:
            continue
        heading = _HEADING.match(line)
        if heading:
            name = heading.group("name").strip()
            context = rules.context.match(name) is not None
            if context or rules.report.match(name):
                in_context = context
                line = heading.group("rest").strip()
                if not line:
                    continue
        if in_context or rules.furniture.match(line):
            continue
        line = _ABBREVIATION.sub(lambda m: "".join(g for g in m.groups() if g), line)
        for sentence in _SENTENCE_END.split(line):
            sentence = _TRAILING.sub("", _LEADING.sub("", sentence))
            if not _LETTERS.search(sentence):
                continue
            kind = _kind(rules, sentence)
            if kind is None:
                return None  # a diagnostic statement: the text asserts something
            seen = seen or kind
    return f"non-diagnostic:{seen or 'empty'}"


def _kind(rules: _Rules, sentence: str) -> str | None:
    match = rules.sentence.match(sentence)
    return rules.kinds[match.lastgroup] if match is not None and match.lastgroup else None
