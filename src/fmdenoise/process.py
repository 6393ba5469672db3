"""What every entry point (the command line, each workflow job) sets up in its own process
before any work: nothing here runs on ``import fmdenoise``, so that a library import never
changes the environment of the program that imports it.

:func:`prefer_huge_pages` asks torch for transparent huge pages on its large CPU buffers
(``THP_MEM_ALLOC_ENABLE``, torch >= 2.4: ``madvise(MADV_HUGEPAGE)`` on buffers of 2 MB and
more) unless the user set the variable. Without it, full-size CPU inference spends about half
of its CPU time in the kernel faulting in the pages of every freshly mapped tensor; with it,
0.70x the time for 6 % more peak memory (``benchmarks/cpu_allocator.py``). torch reads the
variable once, at its first CPU allocation (not at import), so an entry point calls this
before it allocates any tensor; ``THP_MEM_ALLOC_ENABLE=0`` turns it off. Numbers are unchanged
(only where pages come from).

:func:`record_request` writes what a workflow job was given (rule, threads, resources, outputs)
beside its benchmark file (``benchmarks/<job>.request.json`` next to ``benchmarks/<job>.tsv``;
every rule's benchmark path is its log path with ``logs`` for ``benchmarks``), where
``fmdenoise efficiency`` and the rehearsal's report read it: the same record locally, through
SLURM and in a group job, and no dependence on the format of Snakemake's console log.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: the suffix of a job's request record, beside its benchmark file
REQUEST_SUFFIX = ".request.json"


def prefer_huge_pages() -> None:
    """Set ``THP_MEM_ALLOC_ENABLE=1`` unless the user chose a value."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")


def benchmark_of(log_path: str | Path) -> Path | None:
    """The benchmark file of the job whose log is ``log_path`` (``.../logs/<job>.log`` ->
    ``.../benchmarks/<job>.tsv``), or None for a log outside a ``logs`` folder."""
    parts = Path(log_path).parts
    if "logs" not in parts or not str(log_path).endswith(".log"):
        return None
    i = len(parts) - 1 - parts[::-1].index("logs")
    return Path(*parts[:i], "benchmarks", *parts[i + 1 :]).with_suffix(".tsv")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def record_request(job: Any) -> Path | None:
    """Write the request record of a workflow job (the ``snakemake`` object of its script)
    beside its benchmark file (atomically); returns its path (None without a log)."""
    from fmdenoise.io import write_json

    bench = benchmark_of(job.log[0]) if len(job.log) else None
    if bench is None:
        return None
    resources = {k: _plain(v) for k, v in job.resources.items() if not k.startswith("_")}
    record = {
        "rule": job.rule,
        "threads": int(job.threads),
        "resources": resources,
        "outputs": [str(o) for o in job.output],
    }
    path = bench.with_name(bench.stem + REQUEST_SUFFIX)
    write_json(path, record)
    return path
