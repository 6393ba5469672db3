"""Helpers shared by the workflow, SLURM and fault tests: running snakemake on the demo."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo" / "config.yaml"


def snakemake_cmd(workdir: Path, config: Path, *args: str, cores: bool = True) -> list[str]:
    """The command line of ``python -m snakemake`` on the project's Snakefile in ``workdir``
    (``--cores 2`` unless ``cores`` is false, e.g. with an executor profile)."""
    return [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        *(["--cores", "2"] if cores else []),
        *args,
    ]


def snakemake(
    workdir: Path,
    *args: str,
    config: Path = DEMO,
    check: bool = True,
    cores: bool = True,
    timeout: float = 1500,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run snakemake (:func:`snakemake_cmd`); raise with its output if it fails."""
    cmd = snakemake_cmd(workdir, config, *args, cores=cores)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def job_counts(output: str) -> dict[str, int]:
    """The 'Job stats' table of a snakemake run as {rule: count}."""
    table = output.split("Job stats:")[-1]
    return {
        m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m[1] != "total"
    }


def ran(output: str) -> dict[str, int]:
    """Jobs a snakemake run executed, by rule, from its log (its 'Job stats' table predates the
    jobs that the checkpoints add); the target rule ``all`` left out."""
    names = re.findall(r"^(?:local)?(?:rule|checkpoint) (\w+):$", output, re.M)
    return {n: names.count(n) for n in set(names) if n != "all"}


#: the reduced demo's models: one fine-tuned, one trained from scratch (every rule runs; the
#: other architectures are covered by the unit tests, the pretraining test and the rehearsal)
REDUCED_MODELS = ("drunet", "care")


def reduced_demo_config(path: Path, **training: object) -> Path:
    """The demo restricted to one dataset (actin-demo), two models, one learning rate, the full
    grid (no halving) and 20 training steps: every rule of the DAG, in a couple of minutes."""
    cfg = yaml.safe_load(DEMO.read_text())
    cfg["datasets"] = {"actin-demo": cfg["datasets"]["actin-demo"]}
    cfg["models"] = {m: cfg["models"][m] for m in REDUCED_MODELS}
    cfg["grid"].update(learning_rates=cfg["grid"]["learning_rates"][:1], study_datasets=None)
    cfg["grid"]["seed_datasets"] = None  # the extra seed on actin-demo
    # the demo's halving search on one dataset: tests/workflow/test_search.py
    cfg["grid"].update(search="full", sweep_datasets=None)
    cfg["grid"].pop("halving", None)
    cfg["training"].update(steps=20, val_every=10, checkpoint_every=10)
    cfg["training"].update(training)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def prepare(local: Path, work: Path) -> None:
    """A workdir holding a finished run's data, patches and pretrained weights (copied with
    their times, so Snakemake sees them as up to date)."""
    import shutil

    for sub in ("synthetic", "downloads", "sources", "data", "patches", "pretrained"):
        shutil.copytree(local / "results" / "demo" / sub, work / "results" / "demo" / sub)


def digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    import hashlib

    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# What a user adds on this one-node test cluster: it has no accounting database (so no sacct
# and no account to guess), and status checks can be frequent.
LOCAL_CLUSTER = (
    "--slurm-status-command",
    "squeue",
    "--slurm-init-seconds-before-status-checks",
    "1",
    "--seconds-between-status-checks",
    "2",
    "--slurm-no-account",
    "--slurm-keep-successful-logs",
    "--jobs",
    "4",
    "--latency-wait",
    "10",
)


def slurm_command(work: Path, config: Path, *targets: str) -> list[str]:
    profile = ("--profile", str(ROOT / "profiles" / "slurm"))
    return snakemake_cmd(work, config, *profile, *LOCAL_CLUSTER, *targets, cores=False)


def without_seeds(table):
    """A main table without the extra seeds' columns (a run with ``grid.final_seeds: 1``)."""
    return table.drop(columns=[c for c in table.columns if c == "seeds" or "_seed_" in c])


def gpu_config(path: Path, **training: object) -> Path:
    """The reduced demo with the train jobs asking SLURM for one GPU (the node's fake one),
    without its extra seed (the same train, predict and metrics jobs as the others: minutes of
    CI on the one-node cluster for nothing new)."""
    reduced_demo_config(path, **training)
    cfg = yaml.safe_load(path.read_text())
    cfg["grid"]["final_seeds"] = 1
    cfg.setdefault("resources", {})["train"] = {"cpus": 1, "mem_mb": 2000, "runtime": 30, "gpu": 1}
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def dry_run_requests(text: str) -> dict[str, list[dict[str, int]]]:
    """What every job of a ``snakemake -n`` printout asks for, per rule, as the plan's
    ``requests`` (:func:`fmdenoise.plan.report.request_counts`): distinct (cpus = threads,
    mem_mb, runtime, gpu) with their job counts. Snakemake leaves out ``threads: 1`` and a
    resource a job does not ask for (gpu 0)."""
    import re

    counts: dict[str, dict[tuple[int, ...], int]] = {}
    for block in re.split(r"\n(?=\[[^\n]*\]\n(?:local)?(?:rule|checkpoint) )", text):
        name = re.search(r"^(?:local)?(?:rule|checkpoint) (\w+):", block, re.M)
        if not name or name[1] == "all":
            continue
        threads = re.search(r"^\s+threads: (\d+)", block, re.M)
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        values = dict(kv.split("=", 1) for kv in res[1].split(", ")) if res else {}
        key = (
            int(threads[1]) if threads else 1,
            int(values.get("mem_mb", 0)),
            int(values.get("runtime", 0)),
            int(values.get("gpu", 0)),
        )
        rule = counts.setdefault(name[1], {})
        rule[key] = rule.get(key, 0) + 1
    return {
        r: [
            dict(zip(("cpus", "mem_mb", "runtime", "gpu"), k, strict=True), jobs=n)
            for k, n in sorted(c.items())
        ]
        for r, c in counts.items()
    }


#: small configurations of the four architectures (unit tests of the models and the loop)
SMALL = {
    "drunet": {"nc": [8, 16, 32, 64], "nb": 1},
    "restormer": {
        "dim": 8,
        "num_blocks": [1, 1, 1, 1],
        "num_refinement_blocks": 1,
        "heads": [1, 2, 2, 4],
    },
    "kbnet": {
        "width": 8,
        "middle_blk_num": 1,
        "enc_blk_nums": [1, 1, 1, 1],
        "dec_blk_nums": [1, 1, 1, 1],
    },
    "care_unet": {"unet_n_first": 8},
}
