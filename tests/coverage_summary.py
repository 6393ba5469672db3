"""Coverage of the whole test run: combine, map Snakemake's script copies back, report, check.

``make test`` (tests/run_all.sh) runs both pytest processes with ``--cov`` into their own data
file; every Python process they start (snakemake, its jobs, SLURM jobs, pool workers) measures
itself too (``[tool.coverage.run] patch = subprocess`` in pyproject.toml). This script

1. reads those data files; a job's script was measured as Snakemake's copy
   ``.snakemake/scripts/tmp<random>.<name>.py`` (a 3-line preamble, then the script), which is
   mapped back to ``workflow_scripts/<name>.py``;
2. prints branch coverage per module with the lines never run (modules never imported at 0 %);
3. fails if one of :data:`REQUIRED` never ran: the code paths that exist only at the real
   study's size or concurrency, which the tests must take through Snakemake (the total is
   information, not a gate).

    python tests/coverage_summary.py DATA_FILE [DATA_FILE ...]
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import coverage
from coverage import CoverageData

ROOT = Path(__file__).resolve().parents[1]
SCRIPT_COPY = re.compile(r"/\.snakemake/scripts/tmp[^/]*?\.(?P<name>[A-Za-z_]\w*\.py)$")
PREAMBLE_LINES = 3  # snakemake.script.PythonScript: start marker, the pickled object, end marker

#: (file, text of a line): each must have run in a Snakemake job or a test. The branches that
#: depend on size or concurrency (issue: "every code path the real study takes").
REQUIRED = [
    ("src/fmdenoise/evaluate/processes.py", "futures = [pool.submit(fn, *args)"),
    ("src/fmdenoise/evaluate/predict.py", "seconds, pixels = _run_parallel_bm3d("),
    ("src/fmdenoise/evaluate/inference.py", "for y0 in "),
    ("src/fmdenoise/train/loop.py", "self.last.unlink()"),
    ("src/fmdenoise/train/selection.py", "freed += replace_with_note("),
    ("src/fmdenoise/train/search.py", '(state.parent / "last.pt").unlink('),
    ("src/fmdenoise/train/loop.py", "raise PreemptedError("),  # a SLURM time limit's signal
    ("workflow_scripts/predict.py", "predict_dataset("),
    ("workflow_scripts/rung.py", "train_rung("),
    ("workflow_scripts/promote.py", "promotion("),
    # issue 26 (rung states dropped once continued) and issue 27 (extra seeds, transfer)
    ("src/fmdenoise/train/search.py", 'reason=f"continued by {by}"'),
    ("src/fmdenoise/evaluate/tables.py", "seed_spread(df, seeds[(method, dataset)])"),
    ("workflow_scripts/transfer_predict.py", "predict_transfer("),
    ("workflow_scripts/transfer.py", "score_transfer("),
]


def _shift(n: int) -> int:
    """A line (or, negative, a code object's first line in an entry/exit arc) of a script copy
    as a line of the script."""
    return n - PREAMBLE_LINES if n > 0 else n + PREAMBLE_LINES


def combine(files: list[str], out: Path) -> CoverageData:
    """One data file of every input, script copies mapped back to their scripts."""
    target = CoverageData(str(out))
    target.erase()
    for name in files:
        data = CoverageData(name)
        data.read()
        for measured in data.measured_files():
            arcs = data.arcs(measured) or []
            match = SCRIPT_COPY.search(measured)
            if match:
                script = ROOT / "workflow_scripts" / match["name"]
                if not script.is_file():
                    continue
                arcs = [
                    (_shift(a), _shift(b))
                    for a, b in arcs
                    if abs(a) > PREAMBLE_LINES and abs(b) > PREAMBLE_LINES
                ]
                measured = str(script)
            elif not measured.startswith(str(ROOT)):
                continue  # another checkout's copy (a fresh clone's tests)
            target.add_arcs({measured: arcs})
    every = [*ROOT.glob("src/fmdenoise/**/*.py"), *ROOT.glob("workflow_scripts/*.py")]
    target.touch_files([str(p) for p in every])  # never imported: reported at 0 %
    target.write()
    return target


def missing_required(data: CoverageData) -> list[str]:
    """The :data:`REQUIRED` lines that never ran."""
    out = []
    for rel, text in REQUIRED:
        path = ROOT / rel
        lines = path.read_text().splitlines()
        numbers = [i + 1 for i, line in enumerate(lines) if text in line]
        if not numbers:
            out.append(f"{rel}: no line contains {text!r} (update REQUIRED)")
            continue
        ran = {a for pair in (data.arcs(str(path)) or []) for a in pair if a > 0}
        if not ran & set(numbers):
            out.append(f"{rel}:{numbers[0]}: never ran ({text!r})")
    return out


def main(argv: list[str]) -> int:
    files = [f for f in argv if Path(f).is_file()]
    if not files:
        print(f"coverage: no data files among {argv}", file=sys.stderr)
        return 1
    out = ROOT / ".coverage" / "combined"
    out.parent.mkdir(exist_ok=True)
    data = combine(files, out)
    cov = coverage.Coverage(data_file=str(out), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    print("\n---- coverage (branch) of src/ and workflow_scripts/, every process ----")
    cov.report(file=sys.stdout, skip_empty=True)
    missing = missing_required(data)
    for line in missing:
        print(f"NOT RUN (required): {line}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
