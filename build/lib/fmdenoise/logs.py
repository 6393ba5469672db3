"""Logging set-up for workflow jobs: everything (logging, warnings, progress bars on stderr)
goes to the rule's ``log:`` file, and an error ends with one clear line naming its culprit."""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

from fmdenoise.errors import FmdenoiseError


@contextlib.contextmanager
def log_to(path: str | Path | None) -> Iterator[logging.Logger]:
    """Send logging and stderr to ``path`` for the duration of a job.

    A :class:`FmdenoiseError` is logged as one ``ERROR`` line (no traceback) and re-raised,
    so that Snakemake reports the failed job and its log shows the reason.
    """
    root = logging.getLogger()
    stream = open(path, "a") if path else sys.stderr  # noqa: SIM115
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    old_stderr = sys.stderr
    sys.stderr = stream
    try:
        yield logging.getLogger("fmdenoise")
    except FmdenoiseError as exc:
        logging.getLogger("fmdenoise").error("%s: %s", type(exc).__name__, exc)
        raise
    finally:
        sys.stderr = old_stderr
        root.removeHandler(handler)
        if stream is not old_stderr:
            stream.close()
