"""CheXbert-protocol metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from connector.evaluate.metrics import (
    indicators,
    mean_weighted_f1,
    observation_scores,
    score_labeler,
    weighted_f1_from_counts,
)
from mappings.vocabulary import OBSERVATIONS

N = np.nan
# One observation, six reports. truth: pos pos neg unc blank neg; pred: pos neg neg blank pos unc.
TRUTH = np.array([1, 1, 0, -1, N, 0], dtype=float)
PRED = np.array([1, 0, 0, N, 1, -1], dtype=float)


def test_per_class_f1_weighted_f1_and_kappa_by_hand() -> None:
    s = observation_scores(TRUTH, PRED, "Cardiomegaly", "weighted")
    # positive: tp=1 (r0), fp=1 (r4), fn=1 (r1) -> 2/(2+1+1)
    assert s.f1_positive == pytest.approx(0.5)
    # negative: tp=1 (r2), fp=1 (r1), fn=1 (r5)
    assert s.f1_negative == pytest.approx(0.5)
    # uncertain: no true positive -> 0
    assert s.f1_uncertain == 0.0
    # weights from the TRUTH: 2 pos, 2 neg, 1 unc
    assert s.weighted_f1 == pytest.approx((0.5 * 2 + 0.5 * 2 + 0 * 1) / 5)
    assert s.weighted_f1_pos_neg == pytest.approx(0.5)
    # 4x4 kappa: po = 2/6; both marginals (P2, N2, U1, B1) -> pe = 10/36
    assert s.kappa == pytest.approx((2 / 6 - 10 / 36) / (1 - 10 / 36))
    assert (s.n_positive, s.n_negative, s.n_uncertain, s.n_blank) == (2, 2, 1, 1)


def test_no_finding_scored_on_positive_only() -> None:
    truth = np.array([1, N, 1, N])
    pred = np.array([1, 1, N, N])
    s = observation_scores(truth, pred, "No Finding", "weighted")
    assert s.f1_positive == pytest.approx(0.5)
    assert s.weighted_f1 == pytest.approx(0.5)
    assert math.isnan(s.f1_negative) and math.isnan(s.f1_uncertain)


def test_positive_only_mode_counts_uncertain_as_positive() -> None:
    truth = np.array([1, -1, N, N])
    pred = np.array([-1, N, 1, 0])
    s = observation_scores(*_binarized(truth, pred), "Edema", "positive-only")
    # binarised: truth P P _ _, pred P _ P _ -> tp1 fp1 fn1
    assert s.f1_positive == pytest.approx(0.5)
    assert s.weighted_f1 == pytest.approx(0.5)
    assert math.isnan(s.f1_negative)


def _binarized(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from connector.evaluate.metrics import prepare

    return prepare(truth, pred, "positive-only")


def test_mean_skips_observations_absent_from_truth() -> None:
    truth = np.full((6, len(OBSERVATIONS)), np.nan)
    pred = np.full((6, len(OBSERVATIONS)), np.nan)
    j = OBSERVATIONS.index("Cardiomegaly")
    truth[:, j], pred[:, j] = TRUTH, PRED
    k = OBSERVATIONS.index("Pneumothorax")
    truth[:, k] = [0, 0, 0, 0, 0, 0]
    pred[:, k] = [0, 0, 0, 0, 0, 0]
    scores = score_labeler(truth, pred, "weighted")
    assert math.isnan(scores["Edema"].weighted_f1)  # never in the truth: undefined, not 0
    assert scores["Pneumothorax"].weighted_f1 == 1.0
    assert mean_weighted_f1(scores) == pytest.approx((0.4 + 1.0) / 2)


@pytest.mark.parametrize("mode", ["weighted", "positive-only"])
def test_count_form_matches_sklearn(mode: str) -> None:
    rng = np.random.default_rng(0)
    choices = np.array([1, 0, -1, np.nan])
    truth = rng.choice(choices, size=(40, len(OBSERVATIONS)), p=[0.3, 0.3, 0.1, 0.3])
    pred = np.where(rng.random(truth.shape) < 0.7, truth, rng.choice(choices, size=truth.shape))
    truth[:, 0] = np.where(truth[:, 0] == 1, 1, np.nan)  # No Finding: 1 or blank
    ind = indicators(truth, pred, mode)  # type: ignore[arg-type]
    # Identity resample == the full set.
    ones = np.ones((1, len(truth)))
    expected = np.array([s.weighted_f1 for s in score_labeler(truth, pred, mode).values()])  # type: ignore[arg-type]
    np.testing.assert_allclose(weighted_f1_from_counts(ones, ind, mode)[0], expected)  # type: ignore[arg-type]
    # A resample with repeats == sklearn on the explicitly repeated rows (weights recomputed).
    counts = rng.integers(0, 3, size=len(truth)).astype(float)
    rows = np.repeat(np.arange(len(truth)), counts.astype(int))
    expected = np.array([s.weighted_f1 for s in score_labeler(truth[rows], pred[rows], mode).values()])  # type: ignore[arg-type]
    np.testing.assert_allclose(weighted_f1_from_counts(counts[None, :], ind, mode)[0], expected)  # type: ignore[arg-type]
