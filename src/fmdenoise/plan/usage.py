"""After a run (on a cluster or a workstation): what each job used against what it asked for.

``fmdenoise efficiency <workdir>`` reads what every job of the runs in ``workdir`` was given
(the request record each job writes beside its benchmark file: rule, outputs, threads,
requested resources, also for SLURM jobs and grouped jobs; :mod:`fmdenoise.process`) and each
job's benchmark file (wall seconds, peak RSS), and writes to the results folder:

- ``efficiency.csv``: per job, measured wall time and memory, bytes written, and its requests;
- ``efficiency_summary.md``: per rule, the largest measured/requested ratios (the requests
  that were too small, > 1, or far too large);
- ``calibration.csv``: the calibration table the run started from with the rates this run
  measured (inference and BM3D s/Mpx, data rules), so that the next study on the same site
  is planned from measured numbers (``planning.calibration`` or ``fmdenoise plan
  --calibration``).

It needs no accounting database (``sacct``): sites without one get the same report. Where
``sacct`` exists, the SLURM executor's own ``--slurm-efficiency-report`` adds CPU efficiency.
"""

from __future__ import annotations

from pathlib import Path

from fmdenoise.plan import efficiency
from fmdenoise.settings import StudySettings


def write_efficiency(workdir: str | Path, settings: StudySettings, base_table: Path) -> Path:
    """Write ``efficiency.csv``, ``efficiency_summary.md`` and ``calibration.csv`` into the
    results folder of the study under ``workdir``; return that folder."""
    return efficiency.write_measured(Path(workdir), settings, base_table, "efficiency")


__all__ = ["write_efficiency"]
