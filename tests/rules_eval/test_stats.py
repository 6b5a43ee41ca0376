"""Bootstrap CIs and paired tests against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from connector.evaluate.stats import bootstrap_p_value, compare, multiplicities, percentile_ci


def test_multiplicities_are_seeded_resamples_of_n() -> None:
    a = multiplicities(50, 200, seed=42)
    b = multiplicities(50, 200, seed=42)
    assert a.shape == (200, 50)
    assert np.array_equal(a, b)
    assert (a.sum(axis=1) == 50).all()
    assert not np.array_equal(a, multiplicities(50, 200, seed=7))
    with pytest.raises(ValueError):
        multiplicities(0)


def test_percentile_ci_uses_ranks_25_and_975() -> None:
    means = np.arange(1000, dtype=float)[::-1]  # order must not matter
    assert percentile_ci(means) == (25.0, 975.0)


def test_paired_tests_by_hand() -> None:
    a = np.array([0.9, 0.8, 0.7, 0.6])
    b = np.array([0.8, 0.8, 0.5, 0.5])
    c = compare("A", a, np.array([0.75]), "B", b, np.array([0.65]))
    # differences 0.1, 0, 0.2, 0.1: mean 0.1, sd sqrt(0.02/3) -> t = 0.1 / (sd / 2)
    assert c.ttest_statistic == pytest.approx(0.1 / (np.sqrt(0.02 / 3) / 2))
    # Wilcoxon drops the zero difference; all remaining are positive -> W = min(W+, W-) = 0
    assert c.wilcoxon_statistic == 0.0
    assert c.mean_difference == pytest.approx(0.1)
    assert c.n_observations == 4


def test_identical_labelers_are_not_different() -> None:
    a = np.array([0.5, 0.6, np.nan, 0.9])
    c = compare("A", a, np.full(10, 0.6), "B", a.copy(), np.full(10, 0.6))
    assert (c.ttest_p, c.wilcoxon_p) == (1.0, 1.0)
    assert c.n_observations == 3  # NaN observation dropped


def test_bootstrap_p_value_by_hand() -> None:
    # resampled differences centred on the observed 0.1: |d - 0.1| = 0, 0.1, 0.2, 0.1 -> 3 at least 0.1
    boot_a = np.array([0.6, 0.7, 0.4, 0.5])
    boot_b = np.array([0.5, 0.5, 0.5, 0.5])
    assert bootstrap_p_value(boot_a, boot_b, 0.1) == pytest.approx((1 + 3) / (1 + 4))
