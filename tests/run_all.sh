#!/usr/bin/env bash
# Every test (unit, faults, workflow, SLURM): what `make test` runs after the linters.
#
# The SLURM tests (marker `slurm`) spend most of their time waiting on the scheduler (status
# polls, the requeue delay, latency waits), so they run in a second pytest process beside the
# others instead of after them; each process has its own temporary folder. Both must pass:
# any non-zero pytest exit status fails, exit 5 ("no tests collected") included.
#
# Both measure branch coverage (pytest-cov), every process they start included (snakemake, its
# jobs, SLURM jobs, pool workers: pyproject.toml [tool.coverage.run] patch = subprocess), into
# .coverage/; tests/coverage_summary.py then prints the summary and fails if a code path the
# real study takes never ran.
#
#   tests/run_all.sh [PYTHON]     # default .venv/bin/python
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${1:-.venv/bin/python}
slurm_pid=
tmp=$(mktemp -d "${TMPDIR:-/tmp}/fmdenoise-tests.XXXXXX")
cov="$PWD/.coverage"
rm -rf "$cov" && mkdir -p "$cov"
trap 'kill "$slurm_pid" 2>/dev/null; rm -rf "$tmp"' EXIT

COVERAGE_FILE="$cov/slurm" "$PY" -m pytest -m "slurm" -q --durations=10 --basetemp "$tmp/slurm" \
    -p no:cacheprovider --cov --cov-report= >"$tmp/slurm.log" 2>&1 &
slurm_pid=$!
COVERAGE_FILE="$cov/main" "$PY" -m pytest -m "not slurm" -q --durations=15 --basetemp "$tmp/main" \
    --cov --cov-report=
main_rc=$?
wait "$slurm_pid"
slurm_rc=$?
slurm_pid=
echo
echo "---- SLURM tests (pytest -m slurm, run beside the others): exit $slurm_rc ----"
cat "$tmp/slurm.log"
"$PY" tests/coverage_summary.py "$cov/main" "$cov/slurm"
cov_rc=$?
echo "---- exit status: other tests $main_rc, SLURM tests $slurm_rc, required code paths $cov_rc ----"
[ "$main_rc" -eq 0 ] && [ "$slurm_rc" -eq 0 ] && [ "$cov_rc" -eq 0 ]
