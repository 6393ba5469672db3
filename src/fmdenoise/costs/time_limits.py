"""Jobs longer than their partition's time limit: a chain of submissions.

A SLURM partition caps a job's time (``MaxTime``). With ``resources.<rule>.time_limit`` set
(minutes), a training job (a rule :data:`~fmdenoise.costs.rules.RULES` marks resumable:
``train``, and the ``rung`` jobs of a halving search, which resume from ``last.pt``) whose
``runtime`` is longer is submitted with ``runtime = time_limit`` and
``--signal=TERM@<signal_lead>``: SLURM sends SIGTERM that many seconds before the limit, the
training loop saves ``last.pt`` and exits, and Snakemake resubmits the job, which continues from
it; as many times as ``ceil(runtime / (time_limit - signal_lead))`` says. The rule's
``retries`` grow by the chained submissions beyond the first. Since batches are a function of
(seed, step) the chained run ends as an uninterrupted one would.

Other rules cannot continue a partial run: their request is capped at the limit, and
``fmdenoise plan`` flags the jobs whose estimate exceeds it.
"""

from __future__ import annotations

import dataclasses
import math

from fmdenoise.costs.rules import entry, entry_name, rule_of, rule_retries
from fmdenoise.errors import ConfigError
from fmdenoise.settings import StudySettings


@dataclasses.dataclass(frozen=True)
class Chain:
    """How a job of ``need`` minutes is submitted under a time limit."""

    runtime: int  # minutes requested per submission
    submissions: int  # submissions the whole job needs (1 = no chain)
    signal: str | None  # sbatch argument asking for SIGTERM ahead of the limit
    over_limit: bool = False  # a job that cannot continue and needs more than the limit


def chain(need_min: float, limit_min: int | None, lead_s: int, resumable: bool) -> Chain:
    """Submissions and per-submission runtime of a job needing ``need_min`` minutes."""
    need = max(1, math.ceil(need_min))
    if not limit_min:
        return Chain(need, 1, None)
    signal = f"--signal=TERM@{int(lead_s)}" if resumable else None
    if need <= limit_min:
        return Chain(need, 1, signal)
    if not resumable:
        return Chain(int(limit_min), 1, None, over_limit=True)
    usable = limit_min - lead_s / 60
    return Chain(int(limit_min), math.ceil(need / usable), signal)


def limits(settings: StudySettings, rule: str) -> tuple[int | None, int]:
    """``(time_limit, signal_lead)`` of a rule (its entry, else ``resources.default``)."""
    own = entry(settings, rule)
    limit, lead = own.time_limit, own.signal_lead
    if limit is not None and lead >= 60 * limit:
        raise ConfigError(
            f"resources.{entry_name(rule)}.signal_lead: {lead} s is not shorter than the time "
            f"limit ({limit} min): no time would be left to train"
        )
    return limit, int(lead)


def rule_chain(settings: StudySettings, rule: str, need_min: float) -> Chain:
    """The :class:`Chain` of one job of ``rule`` needing ``need_min`` minutes."""
    limit, lead = limits(settings, rule)
    return chain(need_min, limit, lead, rule_of(rule).resumable)


def chained_retries(settings: StudySettings, rule: str) -> int:
    """A rule's ``retries``: its own (:func:`~fmdenoise.costs.rules.rule_retries`) plus the
    chained submissions after the first that its entry's runtime needs."""
    need = entry(settings, rule).runtime
    return rule_retries(settings, rule) + rule_chain(settings, rule, need).submissions - 1


__all__ = ["Chain", "chain", "chained_retries", "limits", "rule_chain"]
