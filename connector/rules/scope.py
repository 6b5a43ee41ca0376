"""A dependency-free NegEx/ConText-style scope engine.

A *cue* is a phrase ("no", "may represent", "is normal") with a kind (what it does to a mention in its scope) and
a direction: forward cues govern text after them, backward cues text before them. Scope ends at the sentence
end, at a termination term ("but", "which", ";", "there"), after a word window when the cue has one, and at clause
boundaries: a backward cue never reaches past a verb (its subject sits right before its copula, so
"the heart is enlarged and the lungs are clear" does not clear the heart), and a forward cue stops at the first
"," / "and" after a verb ("no effusion is seen, and the heart is enlarged").

Classification follows CheXpert's order: pre-negation uncertainty ("cannot exclude X") -> uncertain, else
negation -> negative, else post-negation uncertainty -> uncertain, else positive. Pseudo cues ("no change",
"not only") are matched first and silence any cue they overlap.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from mappings.vocabulary import Certainty


class Kind(str, Enum):
    PSEUDO = "pseudo"  # looks like a cue, is not ("no change in")
    PRE_UNCERTAIN = "pre_uncertain"  # beats negation ("cannot exclude", "no new")
    NEGATION = "negation"
    UNCERTAIN = "uncertain"  # post-negation uncertainty ("may represent", "X or Y")
    TERMINATE = "terminate"  # ends every scope ("but", "which")


class Direction(str, Enum):
    FORWARD = "forward"
    BACKWARD = "backward"
    BOTH = "both"


@dataclass(frozen=True)
class Cue:
    """One cue family. ``phrases`` are regex fragments (lower case; a space matches any whitespace)."""

    kind: Kind
    direction: Direction
    phrases: tuple[str, ...]
    # Max words between cue and mention; None = up to the clause boundary.
    window: int | None = None
    # Extra words/punctuation that end this cue's scope only (e.g. "with" for the adjective "normal").
    stop: str | None = None
    # Only mentions whose matched text matches this regex are affected (e.g. "stable" only for heart/mediastinum).
    mention_filter: str | None = None
    # Backward cues usually come after a copula ("heart size IS normal"): absorb it so it is not a clause boundary.
    # "optional" absorbs one when present; "required" matches only after one (bare "normal" after a noun is too
    # loose: "cardiomegaly with normal vasculature").
    copula: str | None = None
    # A weak hedge ("stable silhouette") loses to an explicit negative mention of the same observation when the
    # profile says so (guidelines: "stable silhouette ... Cardiomegaly 0 when heart size is also called normal").
    weak: bool = False
    # False: the verb/clause rule does not cut this cue's scope ("differential diagnosis is X and includes Y, Z").
    clause: bool = True
    # A later forward cue of another kind ends this cue's forward scope when ``interrupts`` is set on the later one
    # ("no definite consolidation, no effusion": the second "no" decides effusion). Conjunction-like cues ("or")
    # do not interrupt: "no pneumothorax or effusion" is negative for both.
    interrupts: bool = True


_COPULA = (
    r"(?:(?:is|are|was|were|appears?|appeared|remains?|remained|seems?|looks?|has been|have been|has|have)"
    r"(?:\s+(?:now|otherwise|again|still|also|both|essentially|overall|grossly|largely|stably|all|the|"
    r"xxxx|(?:stable|unchanged|normal)\s+and))*\s+)"
)
# A verb in a gap marks a clause boundary (see module docstring).
_VERB = re.compile(
    r"\b(?:is|are|was|were|be|been|being|appears?|appeared|remains?|remained|seems?|shows?|showed|demonstrates?|"
    r"has|have|had|seen|identified|noted|present|visualized|demonstrated|evident|appreciated)\b"
)
_CLAUSE_SEP = re.compile(r"[,;]|\band\b|\bbut\b")
_WORD = re.compile(r"[a-z0-9]+")


def _phrase_regex(phrase: str) -> str:
    return phrase.replace(" ", r"\s+")


def _bounded(phrase: str, prefix: str = "") -> str:
    """Whole-word cue regex. "/" between two words is CheXpert's "X/Y" -> "X or Y" (no word boundary there)."""
    if phrase == "/":
        return r"(?<=[a-z])/(?=[a-z])"
    return rf"(?<![a-z0-9]){prefix}(?:{_phrase_regex(phrase)})(?![a-z0-9])"


@dataclass(frozen=True)
class _CompiledCue:
    cue: Cue
    regex: re.Pattern[str]
    stop: re.Pattern[str] | None
    mention_filter: re.Pattern[str] | None


@dataclass(frozen=True, slots=True)
class CueMatch:
    start: int
    end: int
    cue: _CompiledCue


@dataclass
class CueSet:
    """A compiled cue table: what a profile uses to classify mentions."""

    cues: Sequence[Cue]
    _compiled: list[_CompiledCue] = field(init=False, repr=False)
    _pseudo: re.Pattern[str] | None = field(init=False, repr=False)
    _terminate: re.Pattern[str] | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._compiled = []
        pseudo: list[str] = []
        terminate: list[str] = []
        for cue in self.cues:
            if not cue.phrases:
                continue
            phrases = sorted(cue.phrases, key=len, reverse=True)
            if cue.kind is Kind.PSEUDO:
                pseudo.extend(map(_phrase_regex, phrases))
                continue
            if cue.kind is Kind.TERMINATE:
                terminate.extend(map(_phrase_regex, phrases))
                continue
            prefix = {None: "", "optional": _COPULA + "?", "required": _COPULA}[cue.copula]
            regex = re.compile("|".join(_bounded(p, prefix) for p in phrases))
            self._compiled.append(
                _CompiledCue(
                    cue,
                    regex,
                    re.compile(cue.stop) if cue.stop else None,
                    re.compile(cue.mention_filter) if cue.mention_filter else None,
                )
            )
        self._pseudo = re.compile(rf"(?<![a-z0-9])(?:{'|'.join(pseudo)})(?![a-z0-9])") if pseudo else None
        self._terminate = (
            re.compile(rf"(?<![a-z0-9])(?:{'|'.join(terminate)})(?![a-z0-9])|;") if terminate else re.compile(";")
        )

    def sentence_context(self, low: str, start: int, end: int) -> SentenceContext:
        """Find every cue, terminator and verb of one sentence (``low`` is the lower-cased report)."""
        pseudo = [(m.start(), m.end()) for m in self._pseudo.finditer(low, start, end)] if self._pseudo else []
        matches: list[CueMatch] = []
        for compiled in self._compiled:
            for m in compiled.regex.finditer(low, start, end):
                s, e = m.span()
                if s == e or any(ps < e and s < pe for ps, pe in pseudo):
                    continue
                matches.append(CueMatch(s, e, compiled))
        assert self._terminate is not None
        terms = [m.start() for m in self._terminate.finditer(low, start, end)]
        return SentenceContext(low, matches, terms)


@dataclass
class SentenceContext:
    low: str
    cues: list[CueMatch]
    terminators: list[int]

    def classify(self, start: int, end: int) -> tuple[Certainty, bool]:
        """Certainty of the mention at [start, end) of this sentence, and whether it rests on weak hedges only."""
        governing = [m.cue.cue for m in self.cues if self._governs(m, start, end)]
        kinds = {c.kind for c in governing}
        if Kind.PRE_UNCERTAIN in kinds:
            return Certainty.UNCERTAIN, False
        if Kind.NEGATION in kinds:
            return Certainty.NEGATIVE, False
        if Kind.UNCERTAIN in kinds:
            return Certainty.UNCERTAIN, all(c.weak for c in governing if c.kind is Kind.UNCERTAIN)
        return Certainty.POSITIVE, False

    def governing(self, start: int, end: int) -> Iterable[CueMatch]:
        return (m for m in self.cues if self._governs(m, start, end))

    def _governs(self, m: CueMatch, start: int, end: int) -> bool:
        compiled = m.cue
        cue = compiled.cue
        if compiled.mention_filter is not None and not compiled.mention_filter.search(self.low, start, end):
            return False
        forward = cue.direction is not Direction.BACKWARD and m.end <= start
        backward = cue.direction is not Direction.FORWARD and m.start >= end
        if forward:
            gap_start, gap_end = m.end, start
        elif backward:
            gap_start, gap_end = end, m.start
        else:
            return False
        if any(gap_start <= t < gap_end for t in self.terminators):
            return False
        if forward and any(
            other.cue.cue.interrupts
            and other.cue.cue.kind is not cue.kind
            and other.cue.cue.direction is not Direction.BACKWARD
            and gap_start <= other.start
            and other.end <= gap_end
            for other in self.cues
        ):
            return False
        if compiled.stop is not None and compiled.stop.search(self.low, gap_start, gap_end):
            return False
        if cue.window is not None and len(_WORD.findall(self.low, gap_start, gap_end)) > cue.window:
            return False
        verb = _VERB.search(self.low, gap_start, gap_end) if cue.clause else None
        if verb is not None:
            if backward:
                return False
            if _CLAUSE_SEP.search(self.low, verb.end(), gap_end):
                return False
        return True
