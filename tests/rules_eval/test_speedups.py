"""The speed rewrites of the rule labeler must be exact: each one is checked against the plain form it replaces.

Texts are generated to hit the edges the rewrites reason about (string start, a guard character right before the
first character, whitespace runs, scan windows that start mid-text), so a rewrite that changed any match fails.
"""

from __future__ import annotations

import itertools
import random
import re

import pytest

from connector.rules.mentions import LiteralIndex, MentionRule, compile_parts, contained_literal, hoist
from connector.rules.scope import _CLAUSE_SEP, _VERB
from connector.rules.text import _SENTENCE_END


def _texts(alphabet: str, count: int = 400, seed: int = 3) -> list[str]:
    rng = random.Random(seed)
    words = ["fx", "icd", "icds", "aicd", "line", "lines", "heart", "xheart", "no", "not", "is", "are", "and"]
    out = ["", " ", "fx", " fx", "afx", "a icd", "  line  x", "heart.Next", "x..Y", "a.\n\nb"]
    for _ in range(count):
        parts = [rng.choice(words) if rng.random() < 0.5 else rng.choice(alphabet) for _ in range(rng.randint(1, 12))]
        out.append("".join(p + rng.choice(["", " ", "  ", "\n", "-", "."]) for p in parts))
    return out


def _spans(regex: re.Pattern[str], text: str, pos: int = 0) -> list[tuple[int, int]]:
    return [m.span() for m in regex.finditer(text, pos)]


@pytest.mark.parametrize(
    "alternative",
    [
        r"(?<![a-z])fx(?![a-z])",
        r"(?<![a-z])a?icds?(?![a-z])",
        r"(?<!\s)\s+line\s+",
        r"\bheart\b",
        r"(?<=[ .])no\s+\w+",
        r"(?<![a-z])(?:is|are)\s+",  # not hoistable: must come back unchanged
    ],
)
def test_hoisted_alternative_matches_exactly_like_the_original(alternative: str) -> None:
    original, rewritten = re.compile(alternative), re.compile(hoist(alternative))
    if alternative.endswith(r"(?:is|are)\s+"):
        assert hoist(alternative) == alternative
    for text, pos in itertools.product(_texts("abfhilnx \n.-"), (0, 1, 3)):
        assert _spans(rewritten, text, pos) == _spans(original, text, pos), (alternative, text, pos)


def test_hoist_moves_the_guard_so_the_pattern_starts_with_a_literal() -> None:
    assert hoist(r"(?<![a-z])heart") == r"h(?<!(?:[a-z])h)eart"
    assert hoist(r"\blungs?") == r"l(?<!(?:\w)l)ungs?"


def test_rewritten_sentence_end_verb_and_clause_regexes_match_their_plain_spelling() -> None:
    plain_end = re.compile(r"[.!?]+(?=\s|$)|[.!?]+(?=[A-Z][a-z])|\n+")
    plain_verb = re.compile(  # scope._VERB as first written
        r"\b(?:is|are|was|were|be|been|being|appears?|appeared|remains?|remained|seems?|shows?|showed|demonstrates?|"
        r"has|have|had|seen|identified|noted|present|visualized|demonstrated|evident|appreciated)\b"
    )
    plain_sep = re.compile(r"[,;]|\band\b|\bbut\b")
    for text in _texts("aAiNsx.!?\n ,;", count=600) + ["has been seen, and appears", "xis beings shown"]:
        assert _spans(_SENTENCE_END, text) == _spans(plain_end, text)
        assert _spans(plain_sep, text) == _spans(_CLAUSE_SEP, text)
        assert _spans(_VERB, text) == _spans(plain_verb, text)


def test_literal_index_finds_exactly_the_literals_a_substring_test_finds() -> None:
    fragments = ["pleural effusion", "pleura", "effusions?", "thorax", "pneumothorax", r"(?<!\s)\s+line\s+", "ral ef"]
    rule = MentionRule("Pleural Effusion", re.compile("|".join(fragments)), parts=compile_parts(fragments))
    index = LiteralIndex([rule])
    literals = {literal for literal, _ in rule.parts if literal is not None}
    for text in ["pleural effusion", "a pneumothorax", "pleuraleffusion", "thorax-pleura", "", "effusio"]:
        assert index.present(text) & literals == {lit for lit in literals if lit in text}, text
        assert index.present(text) == index.present(text)  # memoized tokens give the same answer


def test_part_gating_changes_no_span() -> None:
    fragments = [r"(?<![a-z])a?icds?(?![a-z])", r"pacer\s+leads?", r"(?<!\s)\s+line\s+", "wires?"]
    rule = MentionRule("Support Devices", re.compile("|".join(fragments)), parts=compile_parts(fragments))
    from connector.rules.mentions import _with_gates

    gated = _with_gates(rule)
    index = LiteralIndex([gated])
    for text in _texts("acdilnpsw \n", count=300, seed=11):
        present = index.present(text)
        selected = index.selected_parts(present).get(0, [])
        assert gated.scan_parts(text, 0, len(text), selected) == rule.finditer(text, 0, len(text)), text


def test_contained_literal_reads_required_text_only() -> None:
    assert contained_literal(r"(?:pacer|ekg)\s+leads?") == "lead"
    assert contained_literal(r"i(?<![a-z]i)cds?") == "icd"  # a lookbehind consumes nothing
    assert contained_literal(r"(?:a|b)?x") is None
    assert contained_literal(r"\s+line\s+") == "line"
