"""Is a job slower through SLURM than run directly on the same machine? And what does a
competing process do to a job's torch threads?

The 2048x2048 rehearsal through the SLURM test cluster measured its predict jobs 1.3-1.6x
slower per megapixel than the same jobs run locally, while they showed ~184 % CPU of their 2.
This benchmark runs one and the same measurement (``python -m fmdenoise.plan.calibrate infer``:
full-size DRUNet on a ``--size`` image in 512 px tiles, the study's tiling) in turns, in one
run, so that the machine's drift between modes is small:

- ``direct``: a plain subprocess, nothing else running;
- ``slurm``: the same command through ``srun --cpus-per-task=<cores>`` on the running test
  cluster (``tests/slurm/cluster.sh start``; SLURM_CONF from it);
- ``direct+1 busy``: a plain subprocess while one single-threaded busy loop runs beside it,
  which is what a second process on the machine (a test suite, a status poll, a second job)
  does to a job whose torch threads use every core.

Printed: seconds per megapixel per run, the median per mode and each mode's ratio to
``direct``; the process's CPU use (user + sys over wall) per run, to show whether a CPU
figure near 200 % rules a slowdown out.

    python benchmarks/slurm_overhead.py [--size 1024] [--rounds 2] [--no-slurm]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from fmdenoise.plan.calibrate import run_measurement

#: full-size DRUNet in the study's 512 px tiles
MEASURE = ["infer", "--arch", "drunet", "--tile", "512", "--device", "cpu"]


def run_once(
    size: int, env: dict[str, str] | None, prefix: list[str]
) -> tuple[float, float, float]:
    """(s/Mpx reported by the measurement, wall seconds, CPU use of the child in %)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    rate = run_measurement([*MEASURE, "--size", str(size)], env=env, prefix=prefix)[0]["value"]
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return rate, wall, 100 * cpu / wall


def slurm_env() -> dict[str, str] | None:
    """The environment for the running test cluster, or None if it is not running."""
    env = dict(os.environ)
    if "SLURM_CONF" not in env:
        conf = Path(os.environ.get("FMDENOISE_SLURM_DIR", "/tmp/fmdenoise-slurm")) / "slurm.conf"
        if not conf.exists():
            return None
        env["SLURM_CONF"] = str(conf)
    probe = subprocess.run(["sinfo", "-h"], env=env, capture_output=True, check=False)
    return env if probe.returncode == 0 else None


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", type=int, default=1024)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--no-slurm", action="store_true", help="skip the srun mode")
    a = p.parse_args()
    cores = os.cpu_count() or 1
    modes: dict[str, list[str]] = {"direct": []}  # mode: launcher before the command
    senv = None if a.no_slurm else slurm_env()
    if senv is not None:
        modes["slurm"] = ["srun", "--quiet", "-N1", "-n1", f"--cpus-per-task={cores}", "--mem=4000"]
    elif not a.no_slurm:
        print("(no running SLURM test cluster: tests/slurm/cluster.sh start; slurm mode skipped)")
    modes["direct+1 busy"] = []
    rates: dict[str, list[float]] = {m: [] for m in modes}
    print(f"DRUNet full size, {a.size}x{a.size} in 512 px tiles, {cores} cores, {a.rounds} rounds")
    print(f"{'mode':>14} {'round':>5} {'s/Mpx':>8} {'wall s':>7} {'CPU %':>6}")
    for r in range(a.rounds):
        for mode, prefix in modes.items():
            busy = None
            if mode.endswith("busy"):
                busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
            try:
                rate, wall, cpu = run_once(a.size, senv if mode == "slurm" else None, prefix)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
            rates[mode].append(rate)
            print(f"{mode:>14} {r:>5} {rate:>8.2f} {wall:>7.1f} {cpu:>6.0f}")
    base = statistics.median(rates["direct"])
    print("\nmedian s/Mpx and ratio to direct:")
    for mode, values in rates.items():
        med = statistics.median(values)
        print(f"{mode:>14} {med:>8.2f}  x{med / base:.2f}")
    if "slurm" in modes:
        print("(slurm's CPU % is srun's own, not the job's: the job runs under slurmstepd)")


if __name__ == "__main__":
    main()
