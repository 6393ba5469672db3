"""A job's log says why it failed: the error, its traceback and its message at the end, and
what child processes and native code wrote to the standard error."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fmdenoise.errors import ConfigError
from fmdenoise.evaluate.processes import process_map
from fmdenoise.logs import log_to


def lines(path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip()]


def test_project_error_ends_the_log_with_its_message_and_traceback(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(ConfigError), log_to(log) as logger:
        logger.info("working")
        raise ConfigError("grid.losses: 'mea' is not a loss")
    text = log.read_text()
    assert "INFO fmdenoise: working" in text
    assert "ERROR fmdenoise: job failed: ConfigError: grid.losses: 'mea' is not a loss" in text
    assert "Traceback (most recent call last)" in text
    assert lines(log)[-1] == "fmdenoise.errors.ConfigError: grid.losses: 'mea' is not a loss"


def test_unexpected_error_is_logged_with_its_traceback(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(ZeroDivisionError), log_to(log):
        _ = 1 / 0
    text = log.read_text()
    assert "job failed unexpectedly: ZeroDivisionError: division by zero" in text
    assert "_ = 1 / 0" in text  # the failing line, from the traceback
    assert lines(log)[-1] == "ZeroDivisionError: division by zero"


def test_child_processes_and_native_stderr_go_to_the_log(tmp_path):
    """File descriptor 2 is the log's during the job (a spawned child's traceback went to
    Snakemake's console and left the rule's log empty), and is given back afterwards."""
    log = tmp_path / "job.log"
    with log_to(log):
        subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('child says hi')"])
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('after the job')"])
    text = log.read_text()
    assert "child says hi" in text and "after the job" not in text


def test_a_failing_pool_worker_is_in_the_log_with_its_own_traceback(tmp_path):
    log = tmp_path / "job.log"
    with pytest.raises(ValueError), log_to(log):
        list(process_map(int, ["1", "two"], workers=2))
    text = log.read_text()
    assert "job failed unexpectedly: ValueError: invalid literal for int()" in text
    assert '"""\nTraceback' in text  # the worker's traceback (concurrent.futures' remote one)


def test_pool_results_in_order():
    assert list(process_map(pow, [2, 3, 4], [2, 2, 2], workers=2)) == [4, 9, 16]
