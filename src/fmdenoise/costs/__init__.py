"""What the workflow needs while it builds the DAG: the size-dependent resource requests.

The calibration table (:mod:`.calibration`, ``calibration.csv``; measured by
``fmdenoise calibrate``, :mod:`fmdenoise.plan.calibrate`), dataset sizes (:mod:`.sizes`),
per-job estimates and requests (:mod:`.estimates`), SLURM time limits and chained submissions
(:mod:`.time_limits`), and the resource callables of ``rules/common.smk`` (:mod:`.requests`:
ingest, patches, predict, metrics, transfer). ``fmdenoise plan`` prices the study with the
same code (:mod:`fmdenoise.plan`).
"""
