"""A dependency-free NegEx/ConText-style scope engine.

A *cue* is a phrase ("no", "may represent", "is normal") with a kind (what it does to a mention in its scope) and
a direction: forward cues govern text after them, backward cues text before them. Scope ends at the sentence
end, at a termination term ("but", "which", ";", "there"), after a word window when the cue has one, and at clause
boundaries: a backward cue never reaches past a verb (its subject sits right before its copula, so
"the heart is enlarged and the lungs are clear" does not clear the heart), and a forward cue stops at the first
"," / "and" after a verb ("no effusion is seen, and the heart is enlarged").

A later forward cue of another kind ends an earlier one's forward scope ("no consolidation, possible effusion"),
except conjunction-like cues ("no pneumothorax or effusion").

Classification follows CheXpert's order: pre-negation uncertainty ("cannot exclude X") -> uncertain, else
negation -> negative, else post-negation uncertainty -> uncertain, else positive; a hypothetical cue ("if there
is concern for X") removes the mention altogether. Pseudo cues ("no change", "not only") are matched first and
silence any cue they overlap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from connector.rules.mentions import split_top_level
from mappings.vocabulary import Certainty


class Kind(Enum):
    PSEUDO = "pseudo"  # looks like a cue, is not ("no change in")
    PRE_UNCERTAIN = "pre_uncertain"  # beats negation ("cannot exclude", "no new")
    NEGATION = "negation"
    UNCERTAIN = "uncertain"  # post-negation uncertainty ("may represent", "X or Y")
    TERMINATE = "terminate"  # ends every scope ("but", "which")
    HYPOTHETICAL = "hypothetical"  # not a statement about this patient now ("if there is concern for X")


class Direction(Enum):
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
    # False: nothing interrupts this cue ("if there is concern for X": the hedge inside the conditional does not
    # end the conditional).
    interruptible: bool = True


_COPULA_VERBS = (
    "is", "are", "was", "were", "appears?", "appeared", "remains?", "remained", "seems?", "looks?",
    "has been", "have been", "has", "have",
)
_COPULA_MODIFIERS = (
    r"(?:\s+(?:now|otherwise|again|still|also|both|essentially|overall|grossly|largely|stably|all|the|at|"
    r"xxxx|[a-z]+\s+and))*\s+"
)
_COPULA = f"(?:(?:{'|'.join(_COPULA_VERBS)}){_COPULA_MODIFIERS})"
_WORD = re.compile(r"[a-z0-9]+")


def _phrase_regex(phrase: str) -> str:
    return phrase.replace(" ", r"\s+")


def _hoist(alternative: str, guard: str) -> str:
    """``(?<!guard)alternative`` with the lookbehind moved behind the first character when that is a plain one.

    Same matches, but a pattern that starts with a lookbehind defeats the regex engine's first-character scan
    and is tried at every position (~8x slower on a report); after the move the engine skips straight to
    candidate characters. "c(?<!Gc)" checks the character before c, exactly what "(?<!G)c" checks.
    """
    first = alternative[:1]
    if first.isascii() and first.isalnum() and alternative[1:2] not in ("?", "*", "+", "{"):
        return f"{first}(?<!(?:{guard}){first}){alternative[1:]}"
    return f"(?<!{guard}){alternative}"


# A verb in a gap marks a clause boundary (see module docstring).
_VERB = re.compile(
    "|".join(
        _hoist(rf"{verb}\b", r"\w")
        for verb in (
            "is", "are", "was", "were", "be", "been", "being", "appears?", "appeared", "remains?", "remained",
            "seems?", "shows?", "showed", "demonstrates?", "has", "have", "had", "seen", "identified", "noted",
            "present", "visualized", "demonstrated", "evident", "appreciated",
        )
    )
)
_CLAUSE_SEP = re.compile("|".join([",", ";", _hoist(r"and\b", r"\w"), _hoist(r"but\b", r"\w")]))


def _bounded(phrase: str, copula: str | None = None) -> list[tuple[str, bool]]:
    """Whole-word cue regex as top-level alternatives in match-preference order, each with whether it takes the
    word-start guard (see :func:`_guarded`). "/" between two words is CheXpert's "X/Y" -> "X or Y" (no word
    boundary there).

    Together: ``(?<![a-z0-9])COPULA(?:phrase)(?![a-z0-9])`` (COPULA optional or required), with the phrase's
    own alternatives spelled out so :func:`_hoist` can apply to each."""
    if phrase == "/":
        return [(r"/(?<=[a-z]/)(?=[a-z])", False)]  # = (?<=[a-z])/(?=[a-z]), first-character scan friendly
    core = _phrase_regex(phrase)
    tail = r"(?![a-z0-9])"
    out: list[tuple[str, bool]] = []
    if copula is not None:  # greedy "(?:COPULA)?" tries the copula first
        out.append((f"{_COPULA}(?:{core}){tail}", True))
    if copula != "required":
        out += [(alt + tail, True) for alt in split_top_level(core)]
    return out


# Hoisting pays when a regex's alternatives start with few distinct characters; with many (terminators,
# copula verbs) the engine stops at most letters anyway, and the guard-first form fails faster inside words.
_MAX_HOISTED_FIRSTS = 3


def _guarded(alternatives: Sequence[tuple[str, bool]], guard: str = "[a-z0-9]") -> str:
    """One regex for the alternatives, each guarded ones preceded by ``(?<!guard)``, in the faster of two
    equivalent spellings."""
    hoisted = [_hoist(alt, guard) if guarded else alt for alt, guarded in alternatives]
    firsts = {h[0] for h in hoisted}
    if len(firsts) <= _MAX_HOISTED_FIRSTS and not any(h.startswith("(?<!") for h in hoisted):
        return "|".join(hoisted)
    parts: list[str] = []
    run: list[str] = []  # consecutive guarded alternatives share one guard test
    for alt, guarded in alternatives:
        if guarded:
            run.append(alt)
            continue
        if run:
            parts.append(f"(?<!{guard})(?:{'|'.join(run)})")
            run = []
        parts.append(alt)
    if run:
        parts.append(f"(?<!{guard})(?:{'|'.join(run)})")
    return "|".join(parts)


@dataclass(frozen=True)
class _CompiledCue:
    cue: Cue
    regex: re.Pattern[str]
    stop: re.Pattern[str] | None
    mention_filter: re.Pattern[str] | None
    # A word every phrase of this group contains: the regex only runs on sentences that have it (speed).
    trigger: str | None
    # The bare phrases (no copula, no word guards): every match of ``regex`` contains a match of them, and
    # they scan far faster than a guard-first regex, so a sentence without one skips ``regex`` (speed).
    precheck: re.Pattern[str] | None = None


_SENTENCE_WORD = re.compile(r"[a-z0-9']+")
_META = set("()[]{}?*+|\\.^$")


def trigger_word(phrase: str) -> str | None:
    """The phrase's leading plain word when every match must contain it as a whole word, else None (the cue
    then always runs). A quantifier or group right after it ("limits?", "diagnos[ie]s") makes it unsafe;
    a lookaround (it consumes nothing: "xxxx(?<=,\\sxxxx)" still needs the word), a space, "/", "-" or a character
    class for a separator ("top[- ]normal") does not."""
    match = re.match(r"[a-z0-9']+", phrase)
    if match is None:
        return None
    rest = phrase[match.end() :]
    if not rest or rest[0] in " /-" or rest.startswith(("(?!", "(?=", "(?<=", "(?<!", "[- ]", "[ -]")):
        return match.group()
    return None


def _heads(phrases: Sequence[str]) -> list[str] | None:
    r"""A regex for the plain leading text of each phrase regex (with the whitespace after it, when the phrase
    goes on with ``\s+``: "no\s" is rarer than "no"), or None when a phrase has none (then always scan)."""
    heads = set()
    for phrase in phrases:
        for alternative in split_top_level(phrase):
            match = re.match(r"[a-z0-9]+", alternative)
            if match is None:
                return None
            word, rest = match.group(), alternative[match.end() :]
            if rest[:1] in ("?", "*", "{", "+"):
                word, rest = word[:-1], ""  # the last character is optional or repeated: stop before it
            if not word:
                return None
            heads.add(re.escape(word) + (r"\s" if rest.startswith((r"\s", " ")) else ""))
    return sorted(heads, key=len, reverse=True)


def _precheck(heads: list[str] | None) -> re.Pattern[str] | None:
    """A regex that finds any of ``heads`` (one pass instead of a test per phrase); None: no precheck."""
    return None if heads is None else re.compile("|".join(heads))


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
    _always: list[_CompiledCue] = field(init=False, repr=False)
    _by_trigger: dict[str, list[_CompiledCue]] = field(init=False, repr=False)
    _pseudo_check: re.Pattern[str] | None = field(init=False, repr=False)
    _terminate_check: re.Pattern[str] | None = field(init=False, repr=False)
    _triggers: frozenset[str] = field(init=False, repr=False)

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
            groups: dict[str | None, list[str]] = {}
            for phrase in phrases:
                groups.setdefault(trigger_word(phrase), []).append(phrase)
            stop = re.compile(cue.stop) if cue.stop else None
            mention_filter = re.compile(cue.mention_filter) if cue.mention_filter else None
            for trigger, members in groups.items():
                source = _guarded([alt for p in members for alt in _bounded(p, cue.copula)])
                precheck = None
                if trigger is None or source.startswith("(?<!"):
                    precheck = re.compile("|".join(_phrase_regex(p) for p in members))
                self._compiled.append(_CompiledCue(cue, re.compile(source), stop, mention_filter, trigger, precheck))
        self._always = [c for c in self._compiled if c.trigger is None]
        self._by_trigger = {}
        for c in self._compiled:
            if c.trigger is not None:
                self._by_trigger.setdefault(c.trigger, []).append(c)
        # A match needs its phrase's first word in the sentence: a few substring tests skip most regex passes.
        self._pseudo_check = _precheck(_heads(pseudo))
        heads = _heads(terminate)
        self._terminate_check = _precheck(None if heads is None else [*heads, ";"])
        self._triggers = frozenset(self._by_trigger)
        self._pseudo = (
            re.compile(_guarded([(a + r"(?![a-z0-9])", True) for p in pseudo for a in split_top_level(p)]))
            if pseudo
            else None
        )
        self._terminate = re.compile(
            _guarded([*((a + r"(?![a-z0-9])", True) for p in terminate for a in split_top_level(p)), (";", False)])
        )

    def sentence_context(self, low: str, start: int, end: int) -> SentenceContext:
        """Find every cue, terminator and verb of one sentence (``low`` is the lower-cased report)."""
        pseudo = (
            [(m.start(), m.end()) for m in self._pseudo.finditer(low, start, end)]
            if self._pseudo is not None and (self._pseudo_check is None or self._pseudo_check.search(low, start, end))
            else []
        )
        matches: list[CueMatch] = []
        by_trigger = self._by_trigger
        candidates = list(self._always)
        for word in self._triggers.intersection(_SENTENCE_WORD.findall(low, start, end)):
            candidates += by_trigger[word]
        for compiled in candidates:
            if compiled.precheck is not None and compiled.precheck.search(low, start, end) is None:
                continue
            for m in compiled.regex.finditer(low, start, end):
                s, e = m.span()
                if s == e or (pseudo and any(ps < e and s < pe for ps, pe in pseudo)):
                    continue
                matches.append(CueMatch(s, e, compiled))
        assert self._terminate is not None
        terms = (
            [m.start() for m in self._terminate.finditer(low, start, end)]
            if self._terminate_check is None or self._terminate_check.search(low, start, end)
            else []
        )
        return SentenceContext(low, matches, terms)


@dataclass
class SentenceContext:
    low: str
    cues: list[CueMatch]
    terminators: list[int]

    def classify(self, start: int, end: int) -> tuple[Certainty | None, bool]:
        """Certainty of the mention at [start, end) of this sentence (None: hypothetical, so no mention), and
        whether it rests on weak hedges only."""
        governing = [m.cue.cue for m in self.cues if self._governs(m, start, end)]
        if not governing:
            return Certainty.POSITIVE, False
        kinds = [c.kind for c in governing]  # a list: "in" compares by identity, a set would hash (slow for Enum)
        if Kind.HYPOTHETICAL in kinds:
            return None, False
        if Kind.PRE_UNCERTAIN in kinds:
            return Certainty.UNCERTAIN, False
        if Kind.NEGATION in kinds:
            return Certainty.NEGATIVE, False
        if Kind.UNCERTAIN in kinds:
            return Certainty.UNCERTAIN, all(c.weak for c in governing if c.kind is Kind.UNCERTAIN)
        return Certainty.POSITIVE, False

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
        if (
            forward
            and cue.interruptible
            and any(
                other.cue.cue.interrupts
                and other.cue.cue.kind is not cue.kind
                and other.cue.cue.direction is not Direction.BACKWARD
                and gap_start <= other.start
                and other.end <= gap_end
                for other in self.cues
            )
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
