"""Logging set-up for workflow jobs: everything (logging, warnings, progress bars, what native
code and child processes write to the standard error) goes to the rule's ``log:`` file, and a
failed job's log ends with the reason: the error, its traceback, and its one-line message."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fmdenoise.errors import FmdenoiseError
from fmdenoise.process import prefer_huge_pages, record_request


@contextlib.contextmanager
def _stderr_fd_to(target: int) -> Iterator[None]:
    """File descriptor 2 pointed at the file ``target`` for the duration: what native libraries
    and child processes (process pools, spawned interpreters) write to the standard error lands
    in the job's log instead of Snakemake's console or a SLURM output file."""
    try:
        saved = os.dup(2)
    except OSError:  # no descriptor 2 (a process started with stderr closed)
        yield
        return
    if sys.__stderr__ is not None:
        sys.__stderr__.flush()
    os.dup2(target, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


@contextlib.contextmanager
def log_to(path: str | Path | None, job: Any = None) -> Iterator[logging.Logger]:
    """Send logging and stderr to ``path`` for the duration of a job; given the job (the
    ``snakemake`` object of a workflow script), record what it was given beside its benchmark
    file (:func:`fmdenoise.process.record_request`).

    A failure is logged with its traceback and re-raised, so that Snakemake reports the failed
    job and its log shows why: the log then ends with the exception's type and message (for a
    :class:`FmdenoiseError`, the one clear line naming the culprit). A crash of the interpreter
    itself (a segmentation fault or abort in native code) writes the Python stack of every
    thread to the log (:mod:`faulthandler`). It is what every job script enters first, so it
    also sets up the job's process (:func:`fmdenoise.process.prefer_huge_pages`).
    """
    prefer_huge_pages()
    if job is not None:
        record_request(job)
    root = logging.getLogger()
    stream = open(path, "a", buffering=1) if path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    old_stderr = sys.stderr
    sys.stderr = stream
    log = logging.getLogger("fmdenoise")
    own_faulthandler = path is not None and not faulthandler.is_enabled()
    if own_faulthandler:
        faulthandler.enable(stream)
    try:
        with _stderr_fd_to(stream.fileno()) if path else contextlib.nullcontext():
            yield log
    except Exception as exc:
        kind = "failed" if isinstance(exc, FmdenoiseError) else "failed unexpectedly"
        log.error("job %s: %s: %s", kind, type(exc).__name__, exc, exc_info=exc)
        raise
    finally:
        if own_faulthandler:
            faulthandler.disable()
        sys.stderr = old_stderr
        root.removeHandler(handler)
        if stream is not old_stderr:
            stream.close()
