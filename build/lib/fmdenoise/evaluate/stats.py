"""Statistics for the tables: bootstrap confidence intervals and paired Wilcoxon tests
(both from scipy.stats), Holm's step-down adjustment for the comparisons made on one dataset
(scipy has no Holm), and the verdict a reader takes from them."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats


def bootstrap_ci(
    values: Sequence[float], level: float = 0.95, n_resamples: int = 10000, seed: int = 0
) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap ``level`` confidence interval of the mean."""
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2:
        m = float(x.mean()) if len(x) else float("nan")
        return m, m, m
    res = stats.bootstrap(
        (x,),
        np.mean,
        confidence_level=level,
        n_resamples=n_resamples,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def wilcoxon_paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sided paired Wilcoxon signed-rank test of ``a`` vs ``b`` (per-image pairs).

    Returns ``(statistic, p)``; identical samples give p = 1.
    """
    x, y = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"paired samples differ in length: {len(x)} vs {len(y)}")
    if len(x) == 0 or np.all(x == y):
        return 0.0, 1.0
    res = stats.wilcoxon(x, y, alternative="two-sided")
    return float(res.statistic), float(res.pvalue)


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values (family-wise error), in the input order.

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``.
    """
    p = np.asarray(pvalues, dtype=np.float64)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.maximum.accumulate(adjusted)
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def verdict(difference: float, p_adjusted: float | None, alpha: float = 0.05) -> str:
    """``better`` / ``worse`` (adjusted p < alpha, by the sign of the mean difference) or
    ``not significant``; empty when no test was made."""
    if p_adjusted is None or np.isnan(p_adjusted):
        return ""
    if p_adjusted >= alpha or difference == 0:
        return "not significant"
    return "better" if difference > 0 else "worse"
