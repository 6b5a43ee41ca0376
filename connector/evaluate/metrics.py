"""CheXbert's evaluation protocol (DOMAIN.md §2).

Per observation: one-vs-rest F1 for positive, negative and uncertain (blank is always "rest"; sklearn F1 with 0
when there is no true positive), the weighted F1 (weights = class counts in the TRUTH of the evaluated set),
Cohen's kappa on the 4x4 confusion (blank, negative, uncertain, positive), and the positive+negative-only
weighted F1 (the paper's second table). No Finding is scored on positive only. Headline: the plain mean of the
14 weighted F1s.

``positive-only`` mode is for truth that only records positives (IU MeSH codes): both truth and predictions
are binarised (1 or -1 -> positive, else rest) and only the positive F1 is scored.

The point estimates use scikit-learn. :func:`weighted_f1_from_counts` computes the same numbers from count
matrices so 1,000 bootstrap resamples cost a few matrix products instead of 1,000 x 14 x 3 sklearn calls; the
tests check both agree.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
from sklearn.metrics import cohen_kappa_score, f1_score

from connector.evaluate.io import NEGATIVE, POSITIVE, UNCERTAIN
from mappings.vocabulary import NO_FINDING, OBSERVATIONS

Mode = Literal["weighted", "positive-only"]
from connector.evaluate.defaults import MODES  # noqa: E402  (re-exported)
CLASS_CODES: dict[str, float] = {"positive": POSITIVE, "negative": NEGATIVE, "uncertain": UNCERTAIN}
_BLANK = 9.0  # kappa label for a blank cell (NaN cannot be a class label)


@dataclass(frozen=True)
class ObservationScores:
    f1_positive: float
    f1_negative: float  # NaN where the class is not scored (No Finding, positive-only mode)
    f1_uncertain: float
    weighted_f1: float  # NaN when the truth has no scored class at all
    weighted_f1_pos_neg: float
    kappa: float
    n_positive: int
    n_negative: int
    n_uncertain: int
    n_blank: int

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def scored_classes(observation: str, mode: Mode, pos_neg_only: bool = False) -> tuple[str, ...]:
    if mode == "positive-only" or observation == NO_FINDING:
        return ("positive",)
    return ("positive", "negative") if pos_neg_only else ("positive", "negative", "uncertain")


def binarize_positive(values: np.ndarray) -> np.ndarray:
    """Positive-only view: 1 or -1 -> 1 (positive), anything else -> NaN (blank)."""
    out = np.full(values.shape, np.nan)
    out[(values == POSITIVE) | (values == UNCERTAIN)] = POSITIVE
    return out


def prepare(truth: np.ndarray, pred: np.ndarray, mode: Mode) -> tuple[np.ndarray, np.ndarray]:
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "positive-only":
        return binarize_positive(truth), binarize_positive(pred)
    return truth, pred


def class_f1(y_true: np.ndarray, y_pred: np.ndarray, code: float) -> float:
    return float(f1_score(y_true == code, y_pred == code, zero_division=0))


def _weighted(f1s: dict[str, float], counts: dict[str, int], classes: tuple[str, ...]) -> float:
    total = sum(counts[c] for c in classes)
    if total == 0:
        return float("nan")
    return sum(f1s[c] * counts[c] for c in classes) / total


def observation_scores(y_true: np.ndarray, y_pred: np.ndarray, observation: str, mode: Mode) -> ObservationScores:
    """Scores for one observation column (codes 1/0/-1/NaN; already binarised in positive-only mode)."""
    counts = {name: int(np.sum(y_true == code)) for name, code in CLASS_CODES.items()}
    classes = scored_classes(observation, mode)
    f1s = {
        name: (class_f1(y_true, y_pred, CLASS_CODES[name]) if name in classes else float("nan")) for name in CLASS_CODES
    }
    kappa_true = np.where(np.isnan(y_true), _BLANK, y_true)
    kappa_pred = np.where(np.isnan(y_pred), _BLANK, y_pred)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # constant columns: kappa undefined -> NaN
        kappa = float(cohen_kappa_score(kappa_true, kappa_pred, labels=[_BLANK, NEGATIVE, UNCERTAIN, POSITIVE]))
    return ObservationScores(
        f1_positive=f1s["positive"],
        f1_negative=f1s["negative"],
        f1_uncertain=f1s["uncertain"],
        weighted_f1=_weighted(f1s, counts, classes),
        weighted_f1_pos_neg=_weighted(f1s, counts, scored_classes(observation, mode, pos_neg_only=True)),
        kappa=kappa,
        n_positive=counts["positive"],
        n_negative=counts["negative"],
        n_uncertain=counts["uncertain"],
        n_blank=int(np.sum(np.isnan(y_true))),
    )


def score_labeler(truth: np.ndarray, pred: np.ndarray, mode: Mode) -> dict[str, ObservationScores]:
    """All 14 observations. ``truth``/``pred``: (n_reports, 14) in OBSERVATIONS order, raw codes."""
    t, p = prepare(truth, pred, mode)
    return {name: observation_scores(t[:, j], p[:, j], name, mode) for j, name in enumerate(OBSERVATIONS)}


def mean_weighted_f1(scores: dict[str, ObservationScores], pos_neg_only: bool = False) -> float:
    """Plain mean over the observations whose weighted F1 is defined (truth has at least one scored class)."""
    values = [s.weighted_f1_pos_neg if pos_neg_only else s.weighted_f1 for s in scores.values()]
    defined = [v for v in values if not np.isnan(v)]
    return float(np.mean(defined)) if defined else float("nan")


# -- count-matrix form (bootstrap) -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Indicators:
    """Per class: truth, true-positive, false-positive, false-negative indicator matrices (n_reports, 14)."""

    truth: dict[str, np.ndarray]
    tp: dict[str, np.ndarray]
    fp: dict[str, np.ndarray]
    fn: dict[str, np.ndarray]


def indicators(truth: np.ndarray, pred: np.ndarray, mode: Mode) -> Indicators:
    t, p = prepare(truth, pred, mode)
    out: dict[str, dict[str, np.ndarray]] = {"truth": {}, "tp": {}, "fp": {}, "fn": {}}
    for name, code in CLASS_CODES.items():
        is_t, is_p = t == code, p == code
        out["truth"][name] = is_t.astype(np.float64)
        out["tp"][name] = (is_t & is_p).astype(np.float64)
        out["fp"][name] = (~is_t & is_p).astype(np.float64)
        out["fn"][name] = (is_t & ~is_p).astype(np.float64)
    return Indicators(**out)


def weighted_f1_from_counts(
    multiplicity: np.ndarray, ind: Indicators, mode: Mode, pos_neg_only: bool = False
) -> np.ndarray:
    """Weighted F1 per resample and observation, shape (n_resamples, 14).

    ``multiplicity[b, i]`` is how often report i is drawn in resample b, so every count is a matrix product and
    the class weights are recomputed per resample from that resample's truth.
    """
    f1_sum = np.zeros((multiplicity.shape[0], len(OBSERVATIONS)))
    weight_sum = np.zeros_like(f1_sum)
    for name in CLASS_CODES:
        tp = multiplicity @ ind.tp[name]
        denom = 2 * tp + multiplicity @ ind.fp[name] + multiplicity @ ind.fn[name]
        f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        weight = multiplicity @ ind.truth[name]
        mask = np.array([name in scored_classes(o, mode, pos_neg_only) for o in OBSERVATIONS], dtype=np.float64)
        f1_sum += f1 * weight * mask
        weight_sum += weight * mask
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight_sum > 0, f1_sum / np.where(weight_sum > 0, weight_sum, 1), np.nan)
