"""DAG construction time: ``snakemake -n`` on the real study (config.yaml) and on the same
study with a grid ten times larger (ten seeds per cell), measured in one run, alternating.

Prints the job count, the best-of-N seconds, and seconds per thousand jobs for both, so that
the scaling is visible. Target: the real study's DAG builds in under 15 s.

    python benchmarks/dag.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def dry_run(config: Path, workdir: Path) -> tuple[float, int]:
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        "-n",
        "-q",
        "rules",
        "-s",
        str(ROOT / "Snakefile"),
        "--directory",
        str(workdir),
        "--configfile",
        str(config),
        "--cores",
        "2",
    ]
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - start
    total = re.search(r"^total\s+(\d+)$", proc.stdout + proc.stderr, re.M)
    if total is None:
        raise RuntimeError(f"no job count in:\n{proc.stdout}\n{proc.stderr}")
    return seconds, int(total[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_str:
        tmp = Path(tmp_str)
        real = ROOT / "config.yaml"
        cfg = yaml.safe_load(real.read_text())
        cfg["grid"]["seeds"] = list(range(10 * len(cfg["grid"]["seeds"])))
        big = tmp / "config_10x.yaml"
        big.write_text(yaml.safe_dump(cfg, sort_keys=False))
        results: dict[str, list[tuple[float, int]]] = {"real study": [], "10x grid": []}
        for _ in range(args.rounds):
            for name, config in (("real study", real), ("10x grid", big)):
                results[name].append(dry_run(config, tmp / "work"))
    print("snakemake -n (DAG up to the selection checkpoint), best of", args.rounds)
    for name, runs in results.items():
        seconds = min(s for s, _ in runs)
        jobs = runs[0][1]
        per_k = 1000 * seconds / jobs
        print(f"  {name:10s} {jobs:6d} jobs  {seconds:6.2f} s  {per_k:6.2f} s/1000 jobs")
    real_s = min(s for s, _ in results["real study"])
    print(f"real study DAG under 15 s: {'yes' if real_s < 15 else 'NO'} ({real_s:.1f} s)")


if __name__ == "__main__":
    main()
