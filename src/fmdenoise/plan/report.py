"""``fmdenoise plan``: what a study will cost before anything runs.

Per rule: jobs, SLURM submissions (grouped rules share one), GPU-hours, CPU-hours, the longest
job against its runtime request and the largest memory need against its request; disk per
stage and totals. Every figure that rests on an estimate rather than a measurement (a GPU that
was not measured) is marked so in the text and listed under ``estimates`` in the JSON.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from fmdenoise.costs.calibration import Calibration
from fmdenoise.costs.estimates import CostModel
from fmdenoise.costs.sizes import dataset_sizes
from fmdenoise.plan.jobs import JOB_RECORD_BYTES, Job, study_jobs
from fmdenoise.plan.site import check_fit, check_rules, queue_bound
from fmdenoise.settings import StudySettings

STAGES = (
    "downloads",
    "sources",
    "data",
    "patches",
    "pretrained",
    "runs",
    "predictions",
    "tables",
    "logs",
)


def rule_summary(rule: str, jobs: Sequence[Job]) -> dict[str, Any]:
    """The per-rule line of the plan."""
    groups = {j.label for j in jobs if j.group}
    longest = max(jobs, key=lambda j: j.estimate.seconds)
    hungriest = max(jobs, key=lambda j: j.estimate.mem_mb)
    gpu_mem = [j.estimate.gpu_mem_mb for j in jobs if j.estimate.gpu_mem_mb is not None]
    return {
        "jobs": len(jobs),
        "gpu_hours": sum(j.estimate.seconds * j.request["gpu"] for j in jobs) / 3600,
        "cpu_hours": sum(j.estimate.seconds * j.request["cpus"] for j in jobs) / 3600,
        "longest_job_h": longest.estimate.seconds / 3600,
        "longest_job": longest.label,
        "runtime_request_h": longest.request["runtime"] / 60,
        "largest_mem_mb": hungriest.estimate.mem_mb,
        "mem_request_mb": hungriest.request["mem_mb"],
        "peak_gpu_mem_mb": max(gpu_mem) if gpu_mem else None,
        "over_runtime": sum(
            j.estimate.seconds > j.request["runtime"] * 60 * j.request["submissions"] for j in jobs
        ),
        "chained": max(j.request["submissions"] for j in jobs),
        "submissions": sum(j.request["submissions"] for j in jobs),
        "over_memory": sum(j.estimate.mem_mb > j.request["mem_mb"] for j in jobs),
        "grouped_as": jobs[0].group,
        "group_keys": sorted(groups),
        "estimated": any(j.estimate.estimated for j in jobs),
        "sources": sorted({j.estimate.source for j in jobs}),
        "requests": request_counts(jobs),
    }


#: what a job asks of Snakemake and the cluster (per submission): CPUs (the job's threads),
#: memory, runtime (minutes), GPUs
REQUEST_KEYS = ("cpus", "mem_mb", "runtime", "gpu")


def request_counts(jobs: Sequence[Job]) -> list[dict[str, int]]:
    """The distinct requests of ``jobs`` and how many jobs make each (``jobs``), sorted: what
    ``snakemake -n`` shows job by job (``threads``, ``mem_mb``, ``runtime``, ``gpu``)."""
    counts: dict[tuple[int, ...], int] = {}
    for j in jobs:
        key = tuple(int(j.request[k]) for k in REQUEST_KEYS)
        counts[key] = counts.get(key, 0) + 1
    return [dict(zip(REQUEST_KEYS, key, strict=True), jobs=n) for key, n in sorted(counts.items())]


def make_plan(
    settings: StudySettings,
    calibration: Calibration | None = None,
    workdir: str | Path = ".",
    partitions: Mapping[str, int | None] | None = None,
    queue: Mapping[str, Mapping[str, Any]] | None = None,
    nodes: Mapping[str, Any] | None = None,
    listed: tuple[Mapping[str, float], list[str]] | None = None,
) -> dict[str, Any]:
    """The plan of a study as one JSON-able object (see the module docstring).

    ``partitions`` (the site's MaxTime per partition, :func:`fmdenoise.plan.site.
    partition_limits`) adds a ``site`` entry: the rules whose requests do not fit.
    ``queue`` (:func:`fmdenoise.plan.site.queue_limits`) adds the site's queue limits and the
    ``--jobs`` bound that keeps every submission within them. ``nodes``
    (:func:`fmdenoise.plan.site.partition_nodes`) adds the rules whose CPUs, memory or GPUs no
    node of their partition has. ``listed`` (:func:`fmdenoise.plan.source_sizes.listed_bytes`)
    gives the folder sources' download bytes from their listing, and its notes."""
    costs = CostModel(settings, calibration or Calibration.load())
    sizes = dataset_sizes(settings, workdir)
    listed_bytes, listing_notes = listed or ({}, [])
    jobs = study_jobs(settings, sizes, costs, listed_bytes)
    by_rule: dict[str, list[Job]] = collections.defaultdict(list)
    for job in jobs:
        by_rule[job.rule].append(job)
    rules = {rule: rule_summary(rule, js) for rule, js in by_rule.items()}
    group_keys = {
        (s["grouped_as"], k) for s in rules.values() if s["grouped_as"] for k in s["group_keys"]
    }
    ungrouped = sum(s["submissions"] for s in rules.values() if not s["grouped_as"])
    for s in rules.values():
        s.pop("group_keys")
    disk = {stage: sum(j.disk_bytes for j in jobs if j.stage == stage) / 1e9 for stage in STAGES}
    disk["logs"] = len(jobs) * JOB_RECORD_BYTES / 1e9
    concurrent = int(settings.planning.concurrent_jobs)
    in_flight = sorted((j.transient_bytes for j in jobs), reverse=True)[:concurrent]
    held = sum(j.held_bytes for j in jobs)
    site = None
    if partitions is not None or queue is not None or nodes is not None:
        # each rule's largest request per resource (per submission)
        requests = {
            r: {k: max(j.request[k] for j in js) for k in ("runtime", "cpus", "mem_mb", "gpu")}
            for r, js in by_rule.items()
        }
        runtimes = {r: q["runtime"] for r, q in requests.items()}
        notes = check_rules(settings, runtimes, partitions) if partitions else []
        site = {
            "partitions": dict(partitions or {}),
            "nodes": dict(nodes or {}),
            "notes": notes + (check_fit(settings, requests, nodes) if nodes else []),
            "queue_limits": dict(queue or {}),
            "jobs": queue_bound(queue or {}),
        }
    return {
        "study": settings.study,
        "site": site,
        "search": settings.grid.search,
        "source_listing": listing_notes,
        "sweep_datasets": settings.grid.sweep_datasets or list(settings.datasets),
        "jobs": len(jobs),
        "submissions": ungrouped + len(group_keys),
        "gpu_hours": sum(s["gpu_hours"] for s in rules.values()),
        "cpu_hours": sum(s["cpu_hours"] for s in rules.values()),
        "disk_gb": sum(disk.values()),
        "disk_gb_by_stage": disk,
        # what a finished job keeps stays to the end, except the rung states (dropped at
        # promotion or once continued) and the unselected candidates' weights (with
        # grid.keep_weights: selected, dropped at selection); so the most the study holds at
        # once is at most the end state, plus the training state of the unfinished jobs
        # running (`concurrent_jobs` of the largest), plus every search at its largest at once
        "disk_peak_gb": sum(disk.values()) + (sum(in_flight) + held) / 1e9,
        "disk_awaiting_selection_gb": held / 1e9,
        "concurrent_jobs": concurrent,
        "files": sum(j.files for j in jobs),
        "rules": rules,
        "datasets": {
            name: {"source": s.source, "train_mpx": s.train_mpx, "test_mpx": s.test_mpx}
            for name, s in sizes.items()
        },
        "estimates": sorted(
            {src for s in rules.values() for src in s["sources"] if "estimate" in src}
        ),
        "margin": float(settings.planning.margin),
    }


def _h(hours: float) -> str:
    return f"{hours:,.1f}" if hours >= 10 else f"{hours:.2f}"


def _node_shape(node: Mapping[str, int]) -> str:
    return f"{node['cpus']} CPUs/{node['mem_mb']} MB/{node['gpus']} GPUs"


def _swept(plan: Mapping[str, Any]) -> str:
    """`` on <datasets>`` when the main sweep runs on some datasets only (the others train at
    the cell selected on the first)."""
    swept, total = plan["sweep_datasets"], len(plan["datasets"])
    if len(swept) == total:
        return ""
    return f" on {', '.join(swept)}; {total - len(swept)} dataset(s) at its selection"


def format_plan(plan: Mapping[str, Any]) -> str:
    """The plan as a text table."""
    lines = [
        f"plan of study {plan['study']!r} ({plan['search']} search{_swept(plan)}): "
        f"{plan['jobs']} jobs, "
        f"{plan['submissions']} SLURM "
        f"submissions, {_h(plan['gpu_hours'])} GPU-h, {_h(plan['cpu_hours'])} CPU-h, "
        f"{plan['disk_gb']:,.1f} GB on disk at the end (requests = estimate x {plan['margin']:g})",
        "",
        f"{'rule':<24}{'jobs':>6}{'GPU-h':>10}{'CPU-h':>10}{'longest h':>11}{'request h':>11}"
        f"{'max mem MB':>12}{'request MB':>12}{'GPU MB':>9}  note",
    ]
    for rule, s in plan["rules"].items():
        notes = []
        if s["estimated"]:
            notes.append("ESTIMATE (GPU not measured)")
        if s["over_runtime"]:
            notes.append(f"{s['over_runtime']} job(s) OVER runtime request")
        if s["chained"] > 1:
            notes.append(
                f"time limit: up to {s['chained']} chained submissions per job "
                f"({s['submissions']} in all)"
            )
        if s["over_memory"]:
            notes.append(f"{s['over_memory']} job(s) OVER memory request")
        if s["grouped_as"]:
            notes.append(f"group {s['grouped_as']}")
        gpu = f"{s['peak_gpu_mem_mb']:,.0f}" if s["peak_gpu_mem_mb"] else "-"
        lines.append(
            f"{rule:<24}{s['jobs']:>6}{_h(s['gpu_hours']):>10}{_h(s['cpu_hours']):>10}"
            f"{_h(s['longest_job_h']):>11}{_h(s['runtime_request_h']):>11}"
            f"{s['largest_mem_mb']:>12,.0f}{s['mem_request_mb']:>12,}{gpu:>9}  {'; '.join(notes)}"
        )
    lines += [
        "",
        "disk (GB): " + ", ".join(f"{k} {v:,.1f}" for k, v in plan["disk_gb_by_stage"].items()),
        f"disk at most {plan['disk_peak_gb']:,.1f} GB at once (the end state, the training "
        f"state of {plan['concurrent_jobs']} unfinished runs: planning.concurrent_jobs"
        + (
            f", and {plan['disk_awaiting_selection_gb']:,.1f} GB of weights and states "
            "awaiting promotion, continuation or selection if every search were at its largest "
            "at once"
            if plan["disk_awaiting_selection_gb"]
            else ""
        )
        + f"); {plan['files']:,} files (inodes), Snakemake's metadata records included",
    ]
    sources = sorted({s["source"] for s in plan["datasets"].values()})
    lines.append(f"dataset sizes from: {', '.join(sources)}")
    lines += [f"source listing: {note}" for note in plan.get("source_listing", [])]
    for note in plan["estimates"]:
        lines.append(f"ESTIMATE: {note}")
    site = plan.get("site")
    if site:
        limits = ", ".join(
            f"{name} {'no limit' if m is None else f'{m} min'}"
            for name, m in site["partitions"].items()
            if name != "*"
        )
        if limits:
            lines.append(f"SLURM partitions (sinfo): {limits}")
        shapes = "; ".join(
            f"{name} " + ", ".join(_node_shape(n) for n in ns)
            for name, ns in site.get("nodes", {}).items()
            if name != "*"
        )
        if shapes:
            lines.append(f"SLURM node shapes (sinfo -e): {shapes}")
        lines += [f"DOES NOT FIT: {note}" for note in site["notes"]]
        queue = ", ".join(
            f"{k} {v['value']} ({v['from']})" for k, v in site["queue_limits"].items()
        )
        lines.append(
            f"SLURM queue limits: {queue or 'none found'}; submit with --jobs {site['jobs']}"
            " (at most MaxSubmitJobs, half of MaxJobCount)"
        )
    return "\n".join(lines)
