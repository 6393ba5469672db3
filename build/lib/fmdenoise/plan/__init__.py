"""Planning: what a study costs before it runs, and requests that follow the jobs' sizes.

The calibration table (:mod:`.calibration`, measured by :mod:`.measure`), dataset sizes
(:mod:`.sizes`), per-job estimates and requests (:mod:`.estimates`), the study's jobs
(:mod:`.jobs`), ``fmdenoise plan`` (:mod:`.report`) and the workflow's size-dependent resource
callables (:mod:`.requests`, used by ``rules/common.smk`` for ingest, patches, predict, metrics).
"""
