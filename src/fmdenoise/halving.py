"""The arithmetic of the successive-halving search, from the config alone: rung budgets, cells
per rung, strata, the grid's order.

The DAG needs it while it is built (``rules/common.smk``), the planner to count jobs
(:mod:`fmdenoise.plan.jobs`), :mod:`fmdenoise.study` to name the tables; the jobs' file work
(ranking cells, promotion files, dropping states) is :mod:`fmdenoise.train.search`, which
reads the method described there.
"""

from __future__ import annotations

from collections.abc import Sequence

from fmdenoise.errors import ConfigError
from fmdenoise.settings import StudySettings


def halving(s: StudySettings) -> bool:
    """Whether the config's main sweep is searched by successive halving."""
    return s.grid.search == "halving"


def rung_budgets(steps: int, min_steps: int, eta: int) -> list[int]:
    """Step budget of every rung, the last one ``steps`` (one rung when min_steps >= steps)."""
    if eta < 2 or min_steps < 1 or steps < 1:
        raise ConfigError(f"halving needs eta >= 2 and positive budgets (eta={eta})")
    budgets, budget = [], min_steps
    while budget < steps:
        budgets.append(budget)
        budget *= eta
    return [*budgets, steps]


def config_budgets(s: StudySettings) -> list[int]:
    """Rung budgets of a config (``[training.steps]`` for the full grid): the explicit
    ``grid.halving.budgets`` then ``training.steps``, or ``min_steps x eta^r``."""
    steps = int(s.training.steps)
    if not halving(s):
        return [steps]
    h = s.grid.halving
    if h.budgets:
        return [int(b) for b in h.budgets] + [steps]
    return rung_budgets(steps, int(h.min_steps), int(h.eta))


#: what ``grid.halving.stratify`` may name: the cell field promotions are made within
STRATA = ("loss",)


def stratum(s: StudySettings, rung: int = 0) -> str | None:
    """The cell field rung ``rung``'s promotion is stratified by (``grid.halving.stratify``,
    for the first ``stratify_rungs`` rungs, every rung when null), or None."""
    h = s.grid.halving
    first = h.stratify_rungs
    return h.stratify if first is None or rung < first else None


def keep(n: int, eta: int) -> int:
    """How many of ``n`` cells go on to the next rung."""
    return max(1, n // eta) if n else 0


def cells_per_rung(n: int, rungs: int, eta: int, groups: int | Sequence[int] = 1) -> list[int]:
    """Cells trained at each rung when ``n`` start (the plan's count). ``groups``: the
    number of equal strata each promotion is made within (one per promotion, or one for all;
    1 = plain halving)."""
    strata = [groups] * (rungs - 1) if isinstance(groups, int) else list(groups)
    counts = [n]
    for g in strata[: rungs - 1]:
        counts.append(g * keep(counts[-1] // g, eta))
    return counts


def grid_order(s: StudySettings) -> list[tuple[str, float, int]]:
    """The main sweep's (loss, lr, seed) cells in grid order (the tie-break order)."""
    g = s.grid
    return [(loss, lr, seed) for loss in g.losses for lr in g.learning_rates for seed in g.seeds]
