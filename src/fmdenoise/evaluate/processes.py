"""Process pools that work inside a Snakemake ``script:`` job.

A ``spawn`` (or ``forkserver``) child re-runs the parent's ``__main__`` module before it takes
work, so that functions defined there can be unpickled. In a Snakemake job that module is the
rule's script, which needs the ``snakemake`` object only the parent has: every child dies with
``NameError: name 'snakemake' is not defined`` and the pool breaks
(``BrokenProcessPool``; snakemake/snakemake#2678). The workers here run only functions of
importable modules, so their children are started with the parent's ``__main__`` hidden: they
import what they run and nothing else. ``fork`` is not an option: the parent's torch/OpenMP
thread pools do not survive it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any


@contextlib.contextmanager
def _main_hidden() -> Iterator[None]:
    """``__main__`` replaced by an empty module while children are started: multiprocessing
    then records neither a main path nor a main module name for them to re-run."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


def process_map(
    fn: Callable[..., Any],
    *iterables: Iterable[Any],
    workers: int,
    initializer: Callable[[], None] | None = None,
) -> Iterator[Any]:
    """``map(fn, *iterables)`` over ``workers`` spawned processes, results in input order.
    ``fn`` and ``initializer`` must live in an importable module (not a script). Every task is
    submitted, and so every worker started, before the first result is yielded."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context, initializer=initializer) as pool:
        with _main_hidden():
            futures = [pool.submit(fn, *args) for args in zip(*iterables, strict=True)]
        for future in futures:
            yield future.result()
