"""Statistics for the tables: bootstrap confidence intervals and paired Wilcoxon tests
(both from scipy.stats)."""

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
