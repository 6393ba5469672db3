"""Measured versus requested, per rule, from a rehearsal; and the plan of the real study.

Runs the reduced rehearsal (one dataset at 512x512, full-size models, two steps; the same one
the slow test runs) unless ``--from DIR`` names the results folder of an earlier rehearsal,
then prints per rule the largest measured/requested ratio of runtime and of memory (< 1: the
request covers the need), and ``fmdenoise plan config.yaml`` priced with the rehearsal's
calibration table.

    python benchmarks/rehearsal.py [--from results/rehearsal] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import pandas as pd

from fmdenoise.config import load_config
from fmdenoise.costs.calibration import Calibration, shipped_table
from fmdenoise.plan import efficiency, rehearsal
from fmdenoise.plan.report import format_plan, make_plan
from fmdenoise.settings import StudySettings

#: the library takes the typed view of a validated config
typed = StudySettings.from_config

ROOT = Path(__file__).resolve().parents[1]
REDUCED = rehearsal.reduced_options()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="results", default=None, help="an earlier rehearsal")
    parser.add_argument("--workdir", default=None)
    args = parser.parse_args()
    if args.results:
        out = Path(args.results)
    else:
        work = Path(args.workdir or tempfile.mkdtemp(prefix="rehearsal-"))
        start = time.perf_counter()
        cfg_path, _log = rehearsal.run(load_config(ROOT / "config.yaml"), work, REDUCED)
        cfg = load_config(cfg_path)
        out = rehearsal.write_report(work, typed(cfg), shipped_table())
        print(f"reduced rehearsal: {time.perf_counter() - start:.0f} s wall, in {work}")
    jobs = pd.read_csv(out / "rehearsal.csv")
    summary = efficiency.summarize(jobs)
    print("\nper rule, measured / requested (largest over the rule's jobs; < 1 = covered):")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print("\nplan of config.yaml with the rehearsal's calibration:")
    real = load_config(ROOT / "config.yaml")
    print(
        format_plan(
            make_plan(typed(real), Calibration.load(out / "calibration.csv"), "/nonexistent")
        )
    )


if __name__ == "__main__":
    main()
