"""Bootstrap CI and Wilcoxon against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from fmdenoise.evaluate.stats import bootstrap_ci, wilcoxon_paired


def test_bootstrap_ci_matches_a_hand_computed_percentile_bootstrap():
    x = np.random.default_rng(3).normal(30, 2, 25)
    mean, lo, hi = bootstrap_ci(x, n_resamples=20000, seed=1)
    rng = np.random.default_rng(7)
    means = x[rng.integers(0, len(x), (20000, len(x)))].mean(axis=1)
    hand_lo, hand_hi = np.percentile(means, [2.5, 97.5])
    assert mean == pytest.approx(x.mean())
    assert lo == pytest.approx(hand_lo, abs=0.05) and hi == pytest.approx(hand_hi, abs=0.05)
    assert lo < mean < hi


def test_wilcoxon_known_answer():
    # differences 1..6, all positive: W+ = 21, W- = 0; exact two-sided p = 2 / 2**6
    a = np.arange(1, 7, dtype=float) + 10
    b = np.full(6, 10.0)
    stat, p = wilcoxon_paired(a, b)
    assert stat == 0.0 and p == pytest.approx(2 / 64)
    assert wilcoxon_paired(a, a) == (0.0, 1.0)
    with pytest.raises(ValueError, match="differ in length"):
        wilcoxon_paired(a, b[:3])


def test_holm_against_hand_computed_values():
    from fmdenoise.evaluate.stats import holm

    # sorted: 0.005 x4 = 0.02, 0.01 x3 = 0.03, 0.03 x2 = 0.06, 0.04 x1 -> max(0.06, 0.04)
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1
    assert holm([0.02]) == pytest.approx([0.02])
    assert holm([]) == []


def test_verdict_says_no_more_than_the_test():
    from fmdenoise.evaluate.stats import verdict

    assert verdict(0.4, 0.01) == "better" and verdict(-0.4, 0.01) == "worse"
    assert verdict(0.4, 0.05) == "not significant" and verdict(0.4, None) == ""
