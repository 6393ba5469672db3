"""What a run measured against what its jobs asked for: the rehearsal's and ``fmdenoise
efficiency``'s report.

:func:`read_requests` reads what every job was given from the request record it wrote beside
its benchmark file (rule, outputs, threads, requested resources; grouped and SLURM jobs too),
:func:`collect` adds each job's measured wall time and peak RSS (its benchmark file) and the
bytes it wrote, :func:`summarize` gives per rule
the largest measured/requested ratios, :func:`calibration_rows` turns the predictions'
``timing.json`` and the data rules' times into calibration rows (s/Mpx), and
:func:`write_measured` writes ``<stem>.csv``, ``<stem>_summary.md`` and ``calibration.csv``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fmdenoise.costs.calibration import Calibration, replace_rows, write_table
from fmdenoise.costs.estimates import FIXED_SECONDS
from fmdenoise.errors import ConfigError, FmdenoiseError
from fmdenoise.evaluate.tiling import tiling_overhead
from fmdenoise.io import write_text
from fmdenoise.process import REQUEST_SUFFIX
from fmdenoise.settings import StudySettings
from fmdenoise.study import inference_tile, method_kind, parse_method

#: what a rehearsal changed to fit the machine (written beside its report, added to the summary)
NOTES = "rehearsal_notes.txt"


def read_requests(results: Path) -> list[dict[str, Any]]:
    """Each job that ran under ``results``: rule, benchmark file, outputs, threads and requested
    resources, from the request record every job writes beside its benchmark file
    (:func:`fmdenoise.process.record_request`)."""
    jobs = []
    for path in sorted((results / "benchmarks").rglob(f"*{REQUEST_SUFFIX}")):
        record = json.loads(path.read_text())
        res = record.get("resources", {})
        jobs.append(
            {
                "rule": record["rule"],
                "record": path,
                "benchmark": path.with_name(path.name.removesuffix(REQUEST_SUFFIX) + ".tsv"),
                "outputs": record.get("outputs", []),
                "threads": int(record.get("threads", 1)),
                "req_mem_mb": int(float(res.get("mem_mb", 0) or 0)),
                "req_runtime_min": int(float(res.get("runtime", 0) or 0)),
                "req_gpu": int(float(res.get("gpu", 0) or 0)),
            }
        )
    return jobs


def _bytes(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size if path.exists() else 0


def collect(workdir: Path, results: Path) -> pd.DataFrame:
    """Per job under ``workdir/results``: rule, wall seconds, peak RSS (MB), bytes written, and
    its requests."""
    rows = []
    base = workdir / results / "benchmarks"
    for job in read_requests(workdir / results):
        bench = job["benchmark"]
        if not bench.is_file():
            continue  # started, never finished
        b = pd.read_csv(bench, sep="\t").iloc[-1]
        rows.append(
            {
                "rule": job["rule"],
                "job": str(bench.relative_to(base).with_suffix("")),
                "seconds": float(b["s"]),
                "max_rss_mb": float(b["max_rss"]) if b["max_rss"] != "-" else float("nan"),
                "bytes_written": sum(_bytes(workdir / o) for o in job["outputs"]),
                "req_runtime_min": job["req_runtime_min"],
                "req_mem_mb": job["req_mem_mb"],
                "req_gpu": job["req_gpu"],
                "threads": job["threads"],
            }
        )
    return pd.DataFrame(rows)


def calibration_rows(
    workdir: Path, settings: StudySettings, jobs: pd.DataFrame
) -> list[dict[str, Any]]:
    """Calibration rows measured by the rehearsal: inference and BM3D s/Mpx from the
    predictions' ``timing.json`` (compute only), and the data rules' s/Mpx from their benchmark
    files and manifests where the work outweighs the job's fixed start-up
    (:data:`~fmdenoise.costs.estimates.FIXED_SECONDS`): at a small scale a data job is all
    start-up and its per-megapixel rate is not measured, so ``fmdenoise calibrate``'s row stays.
    Training steps come from ``fmdenoise calibrate`` too: a rehearsal's few steps are dominated
    by loading and validation."""
    results = workdir / settings.results
    return _data_rule_rows(results, settings, jobs) + _inference_rows(results, settings, jobs)


def _data_rule_rows(
    results: Path, settings: StudySettings, jobs: pd.DataFrame
) -> list[dict[str, Any]]:
    """ingest / patches / metrics s/Mpx where the work outweighs the start-up."""
    rows: list[dict[str, Any]] = []
    mpx: dict[str, dict[str, float]] = {}
    for name in settings.datasets:
        m = pd.read_csv(results / "data" / name / "manifest.csv")
        low = m[m["role"] == "low"]
        px = (low["height"] * low["width"]) / 1e6
        mpx[name] = {
            "all": float((m["height"] * m["width"]).sum()) / 1e6,
            "train": 2 * float(px[low["split"] != "test"].sum()),
            "test": 2 * float(px[low["split"] == "test"].sum()),
        }
    per = {"ingest": "all", "patches": "train", "metrics": "test"}
    for rule, part in per.items():
        sub = jobs[jobs["rule"] == rule]
        work_s = (sub["seconds"] - FIXED_SECONDS).clip(lower=0).sum()
        total_mpx = sum(mpx[j.split("/")[-1]][part] for j in sub["job"])
        if total_mpx and work_s > 2 * FIXED_SECONDS * len(sub):
            total_s = work_s
            rows.append(
                {
                    "kind": "rule",
                    "name": rule,
                    "device_type": "cpu",
                    "value": total_s / total_mpx,
                    "unit": "s/Mpx",
                    "mpx": total_mpx / max(len(sub), 1),
                    "peak_mem_mb": float(sub["max_rss_mb"].max()),
                    "source": "rehearsal",
                }
            )
    return rows


def _inference_rows(
    results: Path, settings: StudySettings, jobs: pd.DataFrame
) -> list[dict[str, Any]]:
    """Inference and BM3D s/Mpx from the predictions' timing.json, with the job's peak RSS
    (models only at their published full size, the size the table's rows describe)."""
    from fmdenoise.models.size import FULL_SIZE  # torch: only when needed

    rows: list[dict[str, Any]] = []
    for timing in sorted((results / "predictions").glob("*/*/timing.json")):
        t = json.loads(timing.read_text())
        method = timing.parent.parent.name
        try:
            kind = method_kind(settings, method)
        except ConfigError:
            continue  # a folder left by another config
        if kind.runs_on == "io":
            continue
        if kind.classical:
            arch = str(kind.calibration)
        else:
            parsed = parse_method(settings, method)
            assert parsed is not None  # a neural kind is a model's method
            model = settings.models[parsed.model]
            arch = model.arch
            if dict(model.kwargs) != FULL_SIZE[arch]:
                continue  # the table's model rows are for the published sizes (the demo's aren't)
        job = jobs[jobs["job"] == f"predict/{method}/{timing.parent.name}"]
        peak = float(job["max_rss_mb"].max()) if len(job) else float("nan")
        image_px = 1e6 * t["megapixels"] / max(t["images"], 1)
        tile = None if kind.classical else t["tile"]  # BM3D takes whole images
        # per megapixel processed: what tiles overlap is counted by the cost model per image
        overhead = tiling_overhead(image_px, tile, int(t.get("overlap") or 0))
        rows.append(
            {
                "kind": "infer",
                "name": arch,
                "device_type": t["device_type"],
                "device": t["device"],
                "value": t["seconds_per_megapixel"] / overhead,
                "unit": "s/Mpx",
                "tile": tile,
                "mpx": min(image_px, (tile or np.inf) ** 2) / 1e6,  # held at peak_mem_mb
                "peak_mem_mb": None if np.isnan(peak) else peak,
                "threads": t["threads"],
                "source": f"rehearsal {method}",
            }
        )
    return rows


def summarize(jobs: pd.DataFrame) -> pd.DataFrame:
    """Per rule: jobs, the largest measured/requested ratios of runtime and memory."""
    j = jobs.assign(
        runtime_ratio=jobs["seconds"] / (60 * jobs["req_runtime_min"]),
        mem_ratio=jobs["max_rss_mb"] / jobs["req_mem_mb"],
    )
    return (
        j.groupby("rule", sort=False)
        .agg(
            jobs=("job", "size"),
            max_seconds=("seconds", "max"),
            max_runtime_ratio=("runtime_ratio", "max"),
            max_rss_mb=("max_rss_mb", "max"),
            max_mem_ratio=("mem_ratio", "max"),
            bytes_written=("bytes_written", "sum"),
        )
        .reset_index()
    )


def write_measured(workdir: Path, settings: StudySettings, base_table: Path, stem: str) -> Path:
    """``<stem>.csv`` (per job), ``<stem>_summary.md`` (per rule, measured vs requested) and
    ``calibration.csv`` (the base table plus the measured rows) in the results folder of a
    run in ``workdir``; returns that folder."""
    out = workdir / settings.results
    jobs = collect(workdir, Path(settings.results))
    if jobs.empty:
        raise FmdenoiseError(
            f"{out}: no finished job with a request record (benchmarks/*{REQUEST_SUFFIX}): "
            "run the workflow there first"
        )
    write_text(out / f"{stem}.csv", jobs.to_csv(index=False))
    summary = summarize(jobs)
    batch = settings.training.batch_size
    text = summary.to_markdown(index=False, floatfmt=".3g")
    text += f"\n\ntraining batch size in this {stem}: {batch}\n"
    tiles = {m: inference_tile(settings, m) for m in settings.models}
    text += f"inference tile per model (px; None = whole image): {tiles}\n"
    notes = out / NOTES
    if notes.is_file() and notes.read_text().strip():
        text += notes.read_text()
    write_text(out / f"{stem}_summary.md", text)
    base = Calibration.load(base_table).rows
    rows = [r for r in base if not str(r.get("source") or "").startswith(stem)]
    measured = [
        {**r, "source": str(r["source"]).replace("rehearsal", stem, 1)}
        for r in calibration_rows(workdir, settings, jobs)
    ]
    write_table(replace_rows(rows, measured), out / "calibration.csv")
    return out


__all__ = [
    "NOTES",
    "calibration_rows",
    "collect",
    "read_requests",
    "summarize",
    "write_measured",
]
