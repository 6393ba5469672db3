"""One table from each rule of the workflow to what its jobs ask for.

Every rule of ``rules/*.smk`` is a row of :data:`RULES`: which ``resources.<entry>`` of the
config its jobs take (``extract`` and ``synthetic_source`` take ``ingest``'s, ``rung`` takes
``train``'s, ...), whether its request grows with its input (``sized``: the estimate of
:class:`~fmdenoise.costs.estimates.CostModel` x ``planning.margin``, the entry's values as a
floor) or is the entry's values as they stand, whether its jobs may hold a GPU, whether they
continue from ``last.pt`` when resubmitted (a partition's time limit then chains them), and its
retries when the entry sets none.

The rules (``rules/common.smk``: ``rule_resources``, ``rule_threads``, ``rule_retries``) and the
planner (:mod:`fmdenoise.plan.jobs`) both read the request of a job from
:func:`fmdenoise.costs.estimates.request`, which reads this table: what ``fmdenoise plan`` prices
is what the jobs ask for (a test compares every job of ``snakemake -n`` with the plan).
"""

from __future__ import annotations

import dataclasses

from fmdenoise.errors import ConfigError
from fmdenoise.settings import ResourceRequest, StudySettings


@dataclasses.dataclass(frozen=True)
class RuleResources:
    """How one rule's jobs are resourced (see the module docstring)."""

    entry: str  # the resources.<entry> of the config (a missing entry: resources.default)
    sized: bool = False  # request = max(entry, estimate x margin) instead of the entry's values
    gpu: bool = False  # its jobs ask for the entry's GPUs (predict: neural methods only)
    resumable: bool = False  # continues from last.pt when resubmitted (time-limit chains)
    retries: int = 0  # resubmissions when the entry sets none


#: every rule of the workflow (a test keeps this list equal to the rules of rules/*.smk)
RULES: dict[str, RuleResources] = {
    # data
    "synthetic_source": RuleResources("ingest"),
    "download": RuleResources("download", retries=1),
    "fetch_folder": RuleResources("download", retries=1),
    "extract": RuleResources("ingest"),
    "ingest": RuleResources("ingest", sized=True),
    "patches": RuleResources("patches", sized=True),
    # pretrained weights
    "convert_checkpoint": RuleResources("pretrained"),
    "pretrain": RuleResources("pretrained", gpu=True),
    # training
    "train": RuleResources("train", gpu=True, resumable=True, retries=2),
    "rung": RuleResources("train", gpu=True, resumable=True, retries=2),
    "promote": RuleResources("default"),
    "select": RuleResources("default"),
    "studies": RuleResources("default"),
    # evaluation
    "predict": RuleResources("predict", sized=True, gpu=True),
    "metrics": RuleResources("metrics", sized=True),
    "transfer_predict": RuleResources("predict", sized=True, gpu=True),
    "transfer": RuleResources("metrics", sized=True),
    "table_main": RuleResources("default"),
    "table_transfer": RuleResources("default"),
    "table_validation": RuleResources("default"),
    "table_cost": RuleResources("default"),
    "table_search": RuleResources("default"),
    "answers": RuleResources("default"),
    # figures
    "figure_learning_curves": RuleResources("default"),
    "figure_transfer": RuleResources("default"),
    "figure_psnr_vs_cost": RuleResources("default"),
    "figure_examples": RuleResources("default"),
}


def rule_of(rule: str) -> RuleResources:
    """The row of ``rule`` (an error naming the rule when the table lacks it)."""
    try:
        return RULES[rule]
    except KeyError:
        raise ConfigError(
            f"rule {rule!r}: not in fmdenoise.costs.rules.RULES (every rule needs a row)"
        ) from None


def entry_name(rule: str) -> str:
    """The ``resources.<entry>`` key a rule's jobs take (for messages that say what to set)."""
    return rule_of(rule).entry


def entry(settings: StudySettings, rule: str) -> ResourceRequest:
    """The config entry a rule's jobs take (``resources.default`` when the config lacks it)."""
    return settings.resources.of(rule_of(rule).entry)


def rule_gpus(settings: StudySettings, rule: str) -> int:
    """GPUs of a rule's jobs: its entry's where the rule may hold one, else none (a predict
    job of a method that is no network asks for none: :func:`fmdenoise.study.method_kind`)."""
    own = settings.resources.own(rule_of(rule).entry)
    return int(own.gpu) if own and rule_of(rule).gpu else 0


def rule_retries(settings: StudySettings, rule: str) -> int:
    """A rule's resubmissions before any time-limit chain: its entry's, else the table's."""
    own = settings.resources.own(rule_of(rule).entry)
    value = own.retries if own else None
    return rule_of(rule).retries if value is None else int(value)


__all__ = ["RULES", "RuleResources", "entry", "entry_name", "rule_gpus", "rule_of", "rule_retries"]
