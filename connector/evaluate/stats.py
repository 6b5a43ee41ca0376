"""Bootstrap confidence intervals and paired comparisons between labelers (the paper's Table 3).

- CIs: 1,000 resamples of the reports (seeded, 42 by default), the SAME resamples for every labeler (paired), class
  weights recomputed per resample; the interval is ranks 25 and 975 (0-based, of 1,000) of the sorted resampled
  means, as in CheXbert's evaluation code.
- Pairs: scipy's paired t-test and Wilcoxon signed-rank test over the per-observation weighted F1s, and a
  two-sided bootstrap p-value of the mean difference: the share of resampled differences, centred on the
  observed difference, at least as far from it as the observed difference is from 0 ((1 + k) / (1 + B), so it is
  never exactly 0).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.stats import ttest_rel, wilcoxon

from connector.evaluate.metrics import Indicators, Mode, weighted_f1_from_counts

from connector.evaluate.defaults import DEFAULT_RESAMPLES, DEFAULT_SEED  # noqa: E402  (re-exported)


def multiplicities(n_reports: int, n_resamples: int = DEFAULT_RESAMPLES, seed: int = DEFAULT_SEED) -> np.ndarray:
    """(n_resamples, n_reports) draw counts of each report in each bootstrap resample."""
    if n_reports <= 0:
        raise ValueError("cannot bootstrap an empty evaluation set")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n_reports, size=(n_resamples, n_reports))
    out = np.zeros((n_resamples, n_reports))
    for b in range(n_resamples):
        out[b] = np.bincount(draws[b], minlength=n_reports)
    return out


def bootstrap_means(multiplicity: np.ndarray, ind: Indicators, mode: Mode, pos_neg_only: bool = False) -> np.ndarray:
    """Mean weighted F1 over the observations, per resample (observations undefined in a resample are skipped)."""
    per_obs = weighted_f1_from_counts(multiplicity, ind, mode, pos_neg_only)
    defined = ~np.isnan(per_obs)
    sums = np.where(defined, per_obs, 0.0).sum(axis=1)
    counts = defined.sum(axis=1)
    return np.divide(sums, counts, out=np.full(sums.shape, np.nan), where=counts > 0)


def percentile_ci(means: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    ordered = np.sort(means[~np.isnan(means)])
    if ordered.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2
    lo = ordered[int(tail * ordered.size)]
    hi = ordered[min(int((1 - tail) * ordered.size), ordered.size - 1)]
    return float(lo), float(hi)


@dataclass(frozen=True)
class Comparison:
    a: str
    b: str
    mean_a: float
    mean_b: float
    mean_difference: float
    ttest_statistic: float
    ttest_p: float
    wilcoxon_statistic: float
    wilcoxon_p: float
    bootstrap_p: float
    n_observations: int

    def as_dict(self) -> dict[str, float | int | str]:
        return asdict(self)


def bootstrap_p_value(boot_a: np.ndarray, boot_b: np.ndarray, observed: float) -> float:
    diffs = boot_a - boot_b
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        return float("nan")
    # Tolerance: differences of F1 means are sums of floats; equal distances must count as equal.
    extreme = np.sum(np.abs(diffs - observed) >= abs(observed) - 1e-12)
    return float((1 + extreme) / (1 + diffs.size))


def compare(
    a: str,
    f1_a: np.ndarray,
    boot_a: np.ndarray,
    b: str,
    f1_b: np.ndarray,
    boot_b: np.ndarray,
) -> Comparison:
    """Paired comparison of two labelers' per-observation weighted F1s (NaN observations dropped pairwise)."""
    keep = ~np.isnan(f1_a) & ~np.isnan(f1_b)
    xa, xb = f1_a[keep], f1_b[keep]
    mean_a, mean_b = float(np.mean(xa)) if xa.size else float("nan"), float(np.mean(xb)) if xb.size else float("nan")
    diff = xa - xb
    if xa.size < 2 or np.allclose(diff, 0):
        # Identical scores: no evidence of a difference (scipy would return NaN or refuse).
        t_stat, t_p, w_stat, w_p = 0.0, 1.0, 0.0, 1.0
    else:
        t = ttest_rel(xa, xb)
        w = wilcoxon(xa, xb)
        t_stat, t_p, w_stat, w_p = float(t.statistic), float(t.pvalue), float(w.statistic), float(w.pvalue)
    return Comparison(
        a=a,
        b=b,
        mean_a=mean_a,
        mean_b=mean_b,
        mean_difference=mean_a - mean_b,
        ttest_statistic=t_stat,
        ttest_p=t_p,
        wilcoxon_statistic=w_stat,
        wilcoxon_p=w_p,
        bootstrap_p=bootstrap_p_value(boot_a, boot_b, mean_a - mean_b),
        n_observations=int(keep.sum()),
    )
