"""The rule labeler: report text -> :class:`LabelSet` with evidence spans.

``label_report`` is the pure function (used directly for silver training labels); :class:`RuleLabeler` wraps it
in the async :class:`mappings.labels.Labeler` interface the connector and the CLI use.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from mappings.labels import Labeler, LabelerInfo, LabelSet, Span
from mappings.vocabulary import NO_FINDING, OBSERVATIONS, PRECEDENCE, SUPPORT_DEVICES, Certainty

from connector.rules.mentions import CARDIOMEGALY, OTHER
from connector.rules.profiles import PROFILES, Profile, get_profile
from connector.rules.scope import SentenceContext
from connector.rules.text import Sentence, lower, split_sentences

__all__ = ["RULES_VERSION", "Mention", "RuleLabeler", "find_mentions", "label_report"]

# Bump when rules change: carried into FHIR/Kafka as the labeler version, so labels stay traceable.
RULES_VERSION = "1.0.0"
_CHF = ("chf", "heart failure")


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
    contexts: dict[int, SentenceContext] = {}
    out: list[Mention] = []
    for rule in profile.rules:
        for sentence_index, sentence in enumerate(sentences):
            for m in rule.regex.finditer(low, sentence.start, sentence.end):
                start, end = m.span()
                if start == end:
                    continue
                if rule.unmention is not None and _overlaps(rule.unmention, low, sentence, start, end):
                    continue
                weak = False
                if rule.fixed is not None:
                    certainty = rule.fixed
                else:
                    ctx = contexts.get(sentence_index)
                    if ctx is None:
                        ctx = contexts[sentence_index] = profile.cues.sentence_context(low, sentence.start, sentence.end)
                    certainty, weak = ctx.classify(start, end)
                    if certainty is Certainty.POSITIVE:
                        if rule.abnormal is not None and not rule.abnormal.search(low, sentence.start, sentence.end):
                            continue
                        if rule.soft:
                            certainty = Certainty.UNCERTAIN
                out.append(Mention(rule.observation, start, end, sentence, certainty, weak))
    return out


def _overlaps(unmention: re.Pattern[str], low: str, sentence: Sentence, start: int, end: int) -> bool:
    return any(u.start() < end and start < u.end() for u in unmention.finditer(low, sentence.start, sentence.end))


def aggregate(text: str, mentions: Sequence[Mention], profile: Profile) -> tuple[dict[str, Certainty], dict[str, list[Span]]]:
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
        spans: list[Span] = []
        for m in sorted(found, key=lambda m: m.start):
            span = Span(start=m.sentence.start, end=m.sentence.end)
            if m.certainty is final and span not in spans:
                spans.append(span)
        evidence[observation] = spans
    if not blocks_no_finding:
        labels[NO_FINDING] = Certainty.POSITIVE
    return labels, evidence


def _resolve(found: Sequence[Mention], negative_beats_weak: bool) -> Certainty:
    best = max((m.certainty for m in found), key=PRECEDENCE.__getitem__)
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
    prof = get_profile(profile)
    labels, evidence = aggregate(text, find_mentions(text, prof), prof)
    return LabelSet(
        labels={k: labels[k] for k in OBSERVATIONS if k in labels},
        evidence=evidence,
        labeler=_info(profile),
    )


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
