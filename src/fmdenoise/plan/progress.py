"""The plan followed during the run: what has finished, what runs, what failed, what is left.

``fmdenoise plan CONFIG --progress`` prices the study as :func:`fmdenoise.plan.report.make_plan`
does and marks each rule's line with what the study's folder shows. Every job writes a request
record beside its benchmark file when it starts (:func:`fmdenoise.process.record_request`) and
Snakemake writes the benchmark file when it ends well, so a job is

- **finished**: its benchmark file exists (its wall seconds are the measured pace);
- **failed**: no benchmark file, and its log's last ``job failed`` line is newer than the
  request record (the job logged its error; a resubmission writes a new record);
- **lost**: no benchmark file, no failure logged, and started longer ago than its runtime
  request (killed from outside: a time limit, memory, a node that went down);
- **running**: started, none of the above.

GPU-hours spent are the finished jobs' wall seconds times their GPUs; what remains is priced at
the pace measured so far on the rule (the mean of its finished jobs, GPUs included), or at the
plan's estimate where nothing has finished yet. The counts are of the plan's jobs: one table,
the plan's, with more columns.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fmdenoise.plan.efficiency import read_requests

#: the line :func:`fmdenoise.logs.log_to` writes when a job fails, with its time stamp
FAILED_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),\d+ ERROR fmdenoise: job failed", re.M)
STATES = ("finished", "running", "failed", "lost")


def job_states(results: Path, now: float | None = None) -> pd.DataFrame:
    """One row per job that has started under ``results``: rule, state (:data:`STATES`), wall
    seconds (finished jobs) and GPUs requested."""
    now = time.time() if now is None else now
    rows = []
    for job in read_requests(results):
        bench, record = job["benchmark"], job["record"]
        seconds = math.nan
        if bench.is_file():
            state = "finished"
            table = pd.read_csv(bench, sep="\t")
            seconds = float(table["s"].iloc[-1]) if len(table) else math.nan
        else:
            started = record.stat().st_mtime
            log = _log_of(results, bench)
            failed = _last_failure(log)
            if failed is not None and failed >= started - 1:
                state = "failed"
            elif now - started > 60 * max(job["req_runtime_min"], 1):
                state = "lost"
            else:
                state = "running"
        rows.append(
            {"rule": job["rule"], "state": state, "seconds": seconds, "gpu": job["req_gpu"]}
        )
    return pd.DataFrame(rows, columns=["rule", "state", "seconds", "gpu"])


def _log_of(results: Path, bench: Path) -> Path:
    """The log beside a benchmark file (every rule's log path is its benchmark path with
    benchmarks -> logs and .tsv -> .log; a test keeps that so)."""
    rel = bench.relative_to(results / "benchmarks")
    return results / "logs" / rel.with_suffix(".log")


def _last_failure(log: Path) -> float | None:
    """When the log last said ``job failed`` (seconds since the epoch), or None."""
    if not log.is_file():
        return None
    found = FAILED_LINE.findall(log.read_text(errors="replace"))
    if not found:
        return None
    return datetime.strptime(found[-1], "%Y-%m-%d %H:%M:%S").timestamp()


def follow(plan: Mapping[str, Any], results: Path, now: float | None = None) -> dict[str, Any]:
    """``plan`` (:func:`~fmdenoise.plan.report.make_plan`) marked with the jobs' states under
    ``results``: per rule the jobs in each state, GPU-hours spent and planned, and the GPU- and
    wall-hours left at the measured pace; and the totals."""
    states = job_states(results, now)
    rules: dict[str, Any] = {}
    for rule, line in plan["rules"].items():
        mine = states[states["rule"] == rule]
        done = mine[mine["state"] == "finished"]
        counts = {s: int((mine["state"] == s).sum()) for s in STATES}
        planned = int(line["jobs"])
        left = max(0, planned - counts["finished"])
        spent_h = float((done["seconds"] * done["gpu"]).sum()) / 3600
        if len(done):  # the pace measured on this rule: hours and GPU-hours a job
            pace_h = float(done["seconds"].mean()) / 3600
            gpu_pace_h = float((done["seconds"] * done["gpu"]).mean()) / 3600
            source = "measured"
        else:  # the plan's estimate
            pace_h = float(line["cpu_hours"]) / max(planned, 1) / max(_cpus(line), 1)
            gpu_pace_h = float(line["gpu_hours"]) / max(planned, 1)
            source = "planned"
        rules[rule] = {
            "planned": planned,
            **counts,
            "left": left,
            "gpu_hours_planned": float(line["gpu_hours"]),
            "gpu_hours_spent": spent_h,
            "gpu_hours_left": left * gpu_pace_h,
            "job_hours_left": left * pace_h,
            "pace": source,
        }
    total = {
        key: sum(r[key] for r in rules.values())
        for key in ("planned", *STATES, "left", "gpu_hours_planned", "gpu_hours_spent",
                    "gpu_hours_left", "job_hours_left")
    }  # fmt: skip
    unplanned = sorted(set(states["rule"]) - set(rules))
    return {"study": plan["study"], "rules": rules, "total": total, "unplanned_rules": unplanned}


def _cpus(line: Mapping[str, Any]) -> int:
    """CPUs of a rule's jobs (the plan's request, the same for all its jobs)."""
    requests = line.get("requests") or [{"cpus": 1}]
    return int(requests[0]["cpus"])


def format_progress(progress: Mapping[str, Any]) -> str:
    """The progress as a table, one line per rule, and the totals."""
    t = progress["total"]
    lines = [
        f"progress of study {progress['study']!r}: {t['finished']} of {t['planned']} jobs "
        f"finished, {t['running']} running, {t['failed']} failed, {t['lost']} lost; "
        f"{t['gpu_hours_spent']:,.1f} GPU-h spent of {t['gpu_hours_planned']:,.1f} planned, "
        f"{t['gpu_hours_left']:,.1f} GPU-h left at the measured pace",
        "",
        f"{'rule':<24}{'jobs':>6}{'done':>6}{'run':>5}{'fail':>6}{'lost':>6}"
        f"{'GPU-h plan':>12}{'GPU-h spent':>13}{'GPU-h left':>12}  pace",
    ]
    for rule, r in progress["rules"].items():
        lines.append(
            f"{rule:<24}{r['planned']:>6}{r['finished']:>6}{r['running']:>5}{r['failed']:>6}"
            f"{r['lost']:>6}{r['gpu_hours_planned']:>12.2f}{r['gpu_hours_spent']:>13.2f}"
            f"{r['gpu_hours_left']:>12.2f}  {r['pace']}"
        )
    if progress["unplanned_rules"]:
        lines.append(f"\njobs of rules the plan does not know: {progress['unplanned_rules']}")
    return "\n".join(lines) + "\n"


__all__ = ["STATES", "follow", "format_progress", "job_states"]
