"""Planning commands: what a study costs before it runs, and what a finished run used.

``fmdenoise plan`` (the study's jobs, :mod:`.jobs`; the report, :mod:`.report`; download sizes
from a folder source's listing, :mod:`.source_sizes`; the SLURM site's limits, :mod:`.site`),
``fmdenoise calibrate`` (the measurements behind the calibration table, :mod:`.calibrate`),
``fmdenoise efficiency`` (measured against requested after a run, :mod:`.efficiency`,
:mod:`.usage`) and ``fmdenoise rehearse`` (every rule at real size on synthetic data,
:mod:`.rehearsal`, :mod:`.rehearsal_source`). What the workflow itself needs while it builds
the DAG (the calibration table, sizes, estimates, requests, time limits) is
:mod:`fmdenoise.costs`; these commands build on it.
"""
