"""The rule labeler: report text -> :class:`LabelSet` with evidence spans.

``label_report`` is the pure function (used directly for silver training labels); :class:`RuleLabeler` wraps it
in the async :class:`mappings.labels.Labeler` interface the connector and the CLI use.
"""

from __future__ import annotations

from bisect import bisect_right
from functools import cache
from operator import attrgetter
from collections.abc import Sequence
from dataclasses import dataclass

from connector.rules.mentions import CARDIOMEGALY, OTHER
from connector.rules.profiles import PROFILES, Profile, get_profile
from connector.rules.scope import SentenceContext
from connector.rules.text import Sentence, lower, split_sentences
from mappings.labels import Labeler, LabelerInfo, LabelSet, Span
from mappings.vocabulary import NO_FINDING, OBSERVATIONS, PRECEDENCE, SUPPORT_DEVICES, Certainty

__all__ = ["RULES_VERSION", "Mention", "RuleLabeler", "find_mentions", "label_report"]

# Bump when rules change: carried into FHIR/Kafka as the labeler version, so labels stay traceable.
# 1.0.0 was stamped on two different rule sets (see docs/EVALUATION_LLM.md, "Run 2"); 1.2.0: generalised on the
# annotated IU set's dev part (docs/LABELING_RULES.md "Rule changes in 1.2.0").
RULES_VERSION = "1.2.0"
_CHF = ("chf", "heart failure")
_START = attrgetter("start")
_BY_PRECEDENCE = sorted(Certainty, key=PRECEDENCE.__getitem__, reverse=True)


@dataclass(frozen=True, slots=True)
class Mention:
    observation: str  # one of OBSERVATIONS (not No Finding) or OTHER
    start: int
    end: int
    sentence: Sentence
    certainty: Certainty
    weak: bool = False


def find_mentions(text: str, profile: Profile) -> list[Mention]:
    """Every classified mention in the labeled sentences of ``text``, in text order per rule."""
    sentences = split_sentences(text, profile.skip_sections)
    if not sentences:
        return []
    low = lower(text)
    starts = [s.start for s in sentences]
    # Scan each rule once over the labeled span, then place matches in sentences (a match that crosses a
    # sentence boundary is no mention): one regex call per rule instead of one per rule and sentence.
    scan_start, scan_end = sentences[0].start, sentences[-1].end
    contexts: dict[int, SentenceContext] = {}
    unmentioned: dict[tuple[int, int], list[tuple[int, int]]] = {}
    out: list[Mention] = []
    present = profile.literals.present(low)
    selected = profile.literals.selected_parts(present)
    for r, rule in enumerate(profile.rules):
        if rule.parts:
            parts = selected.get(r)
            if not parts:
                continue
            spans = rule.scan_parts(low, scan_start, scan_end, parts)
        else:
            spans = rule.finditer(low, scan_start, scan_end)
        for start, end in spans:
            sentence_index = bisect_right(starts, start) - 1
            if sentence_index < 0 or start == end:
                continue
            sentence = sentences[sentence_index]
            if end > sentence.end:
                continue
            if rule.unmention is not None:
                key = (id(rule), sentence_index)
                blocked = unmentioned.get(key)
                if blocked is None:
                    literals = rule.unmention_literals
                    blocked = unmentioned[key] = (
                        [u.span() for u in rule.unmention.finditer(low, sentence.start, sentence.end)]
                        if literals is None or not literals.isdisjoint(present)
                        else []
                    )
                if any(u_start < end and start < u_end for u_start, u_end in blocked):
                    continue
            weak = False
            if rule.fixed is not None:
                certainty = rule.fixed
            else:
                ctx = contexts.get(sentence_index)
                if ctx is None:
                    ctx = contexts[sentence_index] = profile.cues.sentence_context(low, sentence.start, sentence.end)
                found, weak = ctx.classify(start, end)
                if found is None:
                    continue
                certainty = found
                if certainty is Certainty.POSITIVE:
                    if rule.abnormal is not None and not rule.abnormal.search(low, sentence.start, sentence.end):
                        continue
                    if rule.soft:
                        certainty = Certainty.UNCERTAIN
            out.append(Mention(rule.observation, start, end, sentence, certainty, weak))
    return out


def aggregate(
    text: str, mentions: Sequence[Mention], profile: Profile
) -> tuple[dict[str, Certainty], dict[str, list[Span]]]:
    """Mentions -> one certainty per observation (positive > uncertain > negative) + No Finding rule."""
    by_obs: dict[str, list[Mention]] = {}
    for m in mentions:
        by_obs.setdefault(m.observation, []).append(m)
        if (
            profile.chf_implies_cardiomegaly
            and m.certainty is not Certainty.NEGATIVE
            and text[m.start : m.end].lower() in _CHF
        ):
            by_obs.setdefault(CARDIOMEGALY, []).append(
                Mention(CARDIOMEGALY, m.start, m.end, m.sentence, Certainty.UNCERTAIN)
            )
    labels: dict[str, Certainty] = {}
    evidence: dict[str, list[Span]] = {}
    blocks_no_finding = False
    for observation, found in by_obs.items():
        final = _resolve(found, profile.negative_beats_weak_uncertain)
        if observation != SUPPORT_DEVICES and final is not Certainty.NEGATIVE:
            blocks_no_finding = True
        if observation == OTHER:
            continue
        labels[observation] = final
        seen: set[Sentence] = set()
        spans: list[Span] = []
        for m in sorted(found, key=_START):
            if m.certainty is final and m.sentence not in seen:
                seen.add(m.sentence)
                spans.append(Span(start=m.sentence.start, end=m.sentence.end))
        evidence[observation] = spans
    if not blocks_no_finding:
        labels[NO_FINDING] = Certainty.POSITIVE
    return labels, evidence


def _resolve(found: Sequence[Mention], negative_beats_weak: bool) -> Certainty:
    certainties = [m.certainty for m in found]
    best = next(c for c in _BY_PRECEDENCE if c in certainties)  # = max by PRECEDENCE, without hashing enums
    if (
        negative_beats_weak
        and best is Certainty.UNCERTAIN
        and all(m.weak for m in found if m.certainty is Certainty.UNCERTAIN)
        and any(m.certainty is Certainty.NEGATIVE for m in found)
    ):
        return Certainty.NEGATIVE
    return best


def label_report(text: str, profile: str = "improved") -> LabelSet:
    """Label one report. Pure and synchronous: safe to call from training code and worker threads."""
    if not isinstance(text, str):
        raise TypeError(f"report text must be str, not {type(text).__name__}")
    prof = get_profile(profile)
    labels, evidence = aggregate(text, find_mentions(text, prof), prof)
    return LabelSet(
        labels={k: labels[k] for k in OBSERVATIONS if k in labels},
        evidence=evidence,
        labeler=_info(profile),
    )


@cache
def _info(profile: str) -> LabelerInfo:
    return LabelerInfo(name="rules", version=f"{RULES_VERSION}+{profile}")


class RuleLabeler(Labeler):
    """Rule labeler behind the common async interface. CPU-bound and fast (thousands of reports/s), so it runs
    inline rather than in a thread pool."""

    def __init__(self, profile: str = "improved") -> None:
        if profile not in PROFILES:
            raise ValueError(f"unknown rule profile {profile!r}; choose one of {', '.join(PROFILES)}")
        self.profile = profile
        get_profile(profile)  # compile now: fail fast, and keep the first report's latency low
        self.info = _info(profile)

    def label(self, text: str) -> LabelSet:
        return label_report(text, self.profile)

    async def label_batch(self, reports: Sequence[str]) -> list[LabelSet]:
        return [label_report(text, self.profile) for text in reports]
