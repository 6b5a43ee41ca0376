"""Mention rules: which text spans mention which observation.

CheXpert's phrase lists (data/chexpert/phrases) are regular-expression SUBSTRINGS with "_" for a space; a match
overlapping an unmention phrase of the same observation is dropped. Besides the 14 observations, the
"no_finding.txt" list names other abnormalities that only block No Finding (key :data:`OTHER`).
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # the stdlib regex parser: reads which literals a pattern needs
import re._parser as sre_parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
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
    # Speed: the same alternatives split by a literal each must contain; a part runs only when its literal
    # occurs in the report (a substring test is ~100x cheaper than a regex pass over the text).
    parts: tuple[tuple[str | None, re.Pattern[str]], ...] = ()
    # Speed: a literal of each unmention alternative (None: some alternative has none); when none occurs in
    # the report, the unmention regex cannot match and is not run.
    unmention_literals: frozenset[str] | None = None
    # Per part: literals one of which every match contains (None: run always). A part with a literal prefix is
    # gated by it; the others by literals found inside their alternatives ("\s+line\s+" needs "line").
    gates: tuple[frozenset[str] | None, ...] = ()

    def scan_parts(self, low: str, start: int, end: int, selected: Iterable[int]) -> list[tuple[int, int]]:
        """Match spans in [start, end), sorted, of the selected parts (indices into ``parts``, each at most
        once: a part whose gate has several present literals is listed once per literal, deduplicated here)."""
        spans: list[tuple[int, int]] = []
        runs = 0
        parts = self.parts
        for k in set(selected):
            found = [m.span() for m in parts[k][1].finditer(low, start, end)]
            if found:
                spans += found
                runs += 1
        return spans if runs < 2 else sorted(set(spans))

    def finditer(
        self, low: str, start: int, end: int, present: frozenset[str] | set[str] | None = None
    ) -> list[tuple[int, int]]:
        """Match spans in [start, end), sorted. ``present``: the part literals occurring in ``low``
        (:meth:`LiteralIndex.present`); without it each literal is looked up in ``low``."""
        if not self.parts:
            return [m.span() for m in self.regex.finditer(low, start, end)]
        spans: list[tuple[int, int]] = []
        runs = 0
        for (literal, regex), gate in zip(self.parts, self.gates or (None,) * len(self.parts)):
            if present is not None and gate is not None:
                if gate.isdisjoint(present):
                    continue
            elif literal is not None and literal not in low:
                continue
            found = [m.span() for m in regex.finditer(low, start, end)]
            if found:
                spans += found
                runs += 1
        # Parts scan independently, so their matches may repeat or interleave: one part needs no merge.
        return spans if runs < 2 else sorted(set(spans))


class LiteralIndex:
    """Which part literals of a rule set occur in a text, without one substring search per literal (~190 of
    them, the largest single cost of labeling before).

    Literals are runs of ``[a-z'-]``, so every occurrence lies inside one maximal run (a "token") of the text.
    The literals inside a token are found once, by a trie-shaped lookahead (at every position the longest
    literal starting there; the shorter ones starting there are its prefixes, from a table), and remembered:
    report vocabulary is small and repetitive. The result is exactly the set ``literal in text`` accepts.
    """

    _TOKEN = re.compile(r"[a-z'-]+")
    MAX_TOKENS = 100_000  # memory bound for the per-token memo (it stops growing, it is never wrong)

    def __init__(self, rules: Sequence[MentionRule]) -> None:
        literals = sorted(
            {lit for rule in rules for lit, _ in rule.parts if lit is not None}
            | {lit for rule in rules for gate in rule.gates for lit in gate or ()}
            | {lit for rule in rules for lit in rule.unmention_literals or ()}
        )
        self._prefixes = {lit: frozenset(p for p in literals if lit.startswith(p)) for lit in literals}
        self._regex = re.compile(f"(?=({_trie_regex(literals)}))") if literals else None
        self._by_token: dict[str, frozenset[str]] = {}
        # Which parts each literal gates, so a report only visits the parts its literals allow.
        self._parts_by_literal: dict[str, list[tuple[int, int]]] = {}
        self._ungated: dict[int, list[int]] = {}
        for r, rule in enumerate(rules):
            for k, gate in enumerate(rule.gates or (None,) * len(rule.parts)):
                if gate is None:
                    self._ungated.setdefault(r, []).append(k)
                else:
                    for literal in gate:
                        self._parts_by_literal.setdefault(literal, []).append((r, k))

    def _in_token(self, token: str) -> frozenset[str]:
        found: set[str] = set()
        if self._regex is not None:
            for longest in self._regex.findall(token):
                found |= self._prefixes[longest]
        return frozenset(found)

    def selected_parts(self, present: set[str]) -> dict[int, list[int]]:
        """rule index -> indices of its parts that can match, given the literals present (ungated parts always;
        rules without parts are not listed)."""
        selected: dict[int, list[int]] = {rule: list(parts) for rule, parts in self._ungated.items()}
        by_literal = self._parts_by_literal
        for literal in present:
            for rule, part in by_literal.get(literal, ()):
                selected.setdefault(rule, []).append(part)
        return selected

    def present(self, text: str) -> set[str]:
        found: set[str] = set()
        memo = self._by_token
        for token in set(self._TOKEN.findall(text)):
            literals = memo.get(token)
            if literals is None:
                literals = self._in_token(token)
                if len(memo) < self.MAX_TOKENS:
                    memo[token] = literals
            if literals:
                found |= literals
        return found


def _trie_regex(words: Iterable[str]) -> str:
    """An alternation of ``words`` shaped as a character trie (one character test per level), preferring the
    longest word at a position."""
    trie: dict = {}
    for word in words:
        node = trie
        for c in word:
            node = node.setdefault(c, {})
        node[""] = {}

    def emit(node: dict) -> str:
        branches = [re.escape(c) + emit(child) for c, child in sorted(node.items()) if c]
        if not branches:
            return ""
        body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


def _syntax(s: str, start: int = 0) -> Iterator[tuple[int, str, int]]:
    """(index, char, group depth after it) of each "(", ")" and "|" that is regex syntax: not escaped, not
    inside a character class. One scanner, so splitting and group matching agree on what is syntax."""
    depth, in_class, escaped = 0, False, False
    for i in range(start, len(s)):
        c = s[i]
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        elif c in "()|":
            depth += (c == "(") - (c == ")")
            yield i, c, depth


def split_top_level(fragment: str) -> list[str]:
    """Split a regex at its top-level "|" (not inside groups or classes)."""
    out, last = [], 0
    for i, c, depth in _syntax(fragment):
        if c == "|" and depth == 0:
            out.append(fragment[last:i])
            last = i + 1
    out.append(fragment[last:])
    return out


def _group_end(s: str, start: int) -> int:
    """Index of the ")" closing the group that opens at ``s[start]``."""
    for i, c, depth in _syntax(s, start):
        if c == ")" and depth == 0:
            return i
    raise ValueError(f"unbalanced group in {s!r}")


def hoist(alternative: str) -> str:
    r"""The same regex alternative with a leading lookbehind (or ``\b``) moved behind the first character.

    A pattern that starts with a lookbehind defeats the regex engine's first-character scan, so it is tried at
    every position of the text (several times slower on a report); "c(?<!Gc)" checks exactly what "(?<!G)c"
    checks (the text before c), and the engine can then skip to candidate characters. Only rewrites it can
    prove equivalent (a plain first character, "c?" spelled as its two greedy branches, "(?<!\s)\s+");
    anything else is returned unchanged. The result may be an alternation: join it only at top level.
    """
    if alternative.startswith(("(?<!", "(?<=")):
        end = _group_end(alternative, 0)
        sign, guard, rest = alternative[3], alternative[4:end], alternative[end + 1 :]
    elif alternative.startswith("\\b"):
        sign, guard, rest = "!", r"\w", alternative[2:]
    else:
        return alternative
    head = alternative[: len(alternative) - len(rest)]
    c, quantifier = rest[:1], rest[1:2]
    if c.isascii() and c.isalnum():
        if quantifier == "?" and rest[2:3] not in ("?", "+"):
            return f"{hoist(head + c + rest[2:])}|{hoist(head + rest[2:])}"
        if quantifier in ("*", "+", "{"):
            return alternative
        return f"{c}(?<{sign}(?:{guard}){c}){rest[1:]}"
    if sign == "!" and not alternative.startswith("\\b") and rest.startswith(r"\s+") and rest[3:4] not in ("?", "+"):
        return rf"\s(?<!(?:{guard})\s)\s*{rest[3:]}"
    return alternative


def hoisted(pattern: str) -> str:
    """:func:`hoist` applied to every top-level alternative of ``pattern`` (order kept)."""
    return "|".join(hoist(alternative) for alternative in split_top_level(pattern))


def required_literal(alternative: str) -> str | None:
    """A plain-text prefix every match of a single alternative starts with (after leading lookarounds), or None."""
    s = alternative
    while s.startswith(("(?<", "(?=", "(?!")):
        try:
            s = s[_group_end(s, 0) + 1 :]
        except ValueError:
            return None
    if s.startswith("\\b"):
        s = s[2:]
    run = re.match(r"[a-z'-]*", s).group()  # type: ignore[union-attr]
    if run and len(s) > len(run) and s[len(run)] in "?*{":
        run = run[:-1]
    return run if len(run) >= 3 else None


def compile_parts(fragments: Iterable[str]) -> tuple[tuple[str | None, re.Pattern[str]], ...]:
    groups: dict[str | None, list[str]] = {}
    for fragment in fragments:
        for alternative in split_top_level(fragment):
            groups.setdefault(required_literal(alternative), []).append(alternative)
    return tuple((literal, re.compile(hoisted(alternation(alts)))) for literal, alts in groups.items())


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
    regex = phrase.replace("_", " ").replace(" ", r"\s+")
    # A leading space must start at the first character of a whitespace run: the same matches, but a long run of
    # spaces is scanned once instead of once per position (quadratic).
    return r"(?<!\s)" + regex if regex.startswith(r"\s+") else regex


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


def _literals(fragments: Iterable[str]) -> frozenset[str] | None:
    """One literal every match of each alternative contains, or None when some alternative has none."""
    out = set()
    for fragment in fragments:
        for alternative in split_top_level(fragment):
            literal = required_literal(alternative) or contained_literal(alternative)
            if literal is None:
                return None
            out.add(literal)
    return frozenset(out)


_LITERAL_CHARS = frozenset(map(ord, "abcdefghijklmnopqrstuvwxyz'-"))
_ZERO_WIDTH = (sre_constants.ASSERT, sre_constants.ASSERT_NOT, sre_constants.AT)


def contained_literal(alternative: str) -> str | None:
    """The longest run (>= 2 characters) of plain ``[a-z'-]`` characters that every match of one regex
    alternative contains, read from its parsed top-level sequence; None when there is none."""
    try:
        items = list(sre_parse.parse(alternative))
    except re.error:
        return None
    best, run = "", []
    for op, av in items + [(None, None)]:
        if op is sre_constants.LITERAL and av in _LITERAL_CHARS:
            run.append(chr(av))
            continue
        if op in _ZERO_WIDTH:
            continue  # consumes nothing: the characters on both sides are adjacent in the match
        if op is sre_constants.MAX_REPEAT or op is sre_constants.MIN_REPEAT:
            low, _high, body = av
            body = list(body)
            if low >= 1 and len(body) == 1 and body[0][0] is sre_constants.LITERAL and body[0][1] in _LITERAL_CHARS:
                run.append(chr(body[0][1]))  # "s+" still needs one "s"; the run ends after it
        if len(run) > len(best):
            best = "".join(run)
        run = []
    return best if len(best) >= 2 else None


def _gate(literal: str | None, regex: re.Pattern[str]) -> frozenset[str] | None:
    if literal is not None:
        return frozenset((literal,))
    found = set()
    for alternative in split_top_level(regex.pattern):
        contained = contained_literal(alternative)
        if contained is None:
            return None
        found.add(contained)
    return frozenset(found)


def _with_gates(rule: MentionRule) -> MentionRule:
    return replace(rule, gates=tuple(_gate(literal, regex) for literal, regex in rule.parts))


def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(hoisted(pattern))


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
                _compile(alternation(fragments)),
                _compile(alternation(un)) if un else None,
                parts=compile_parts(fragments),
                unmention_literals=_literals(un) if un else None,
            )
        )
    for observation, fragments in soft.items():
        fragments = list(fragments)
        if fragments:
            rules.append(
                MentionRule(observation, _compile(alternation(fragments)), soft=True, parts=compile_parts(fragments))
            )
    for observation, fragment, certainty in fixed:
        rules.append(MentionRule(observation, _compile(fragment), fixed=certainty))
    for observation, fragments, abnormal, is_soft in structures:
        un = list(unmentions.get(observation, ()))
        rules.append(
            MentionRule(
                observation,
                _compile(alternation(fragments)),
                _compile(alternation(un)) if un else None,
                soft=is_soft,
                abnormal=_compile(abnormal),
                parts=compile_parts(fragments),
                unmention_literals=_literals(un) if un else None,
            )
        )
    return [_with_gates(rule) for rule in rules]
