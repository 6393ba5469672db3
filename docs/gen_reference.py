"""Write the generated reference pages into docs/reference/ (run before `mkdocs build`):
the configuration reference from the schema, the CLI reference from the argparse parsers and
the demo's rule graph from `snakemake --rulegraph mermaid-js`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from fmdenoise.cli import _parser
from fmdenoise.io import write_text
from fmdenoise.reference import cli_reference, config_reference

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "reference"


def rule_graph() -> str:
    cmd = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "Snakefile"), "--configfile"]
    cmd += [str(ROOT / "demo" / "config.yaml"), "--rulegraph", "mermaid-js", "--quiet", "all"]
    graph = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    start = graph.index("flowchart") if "flowchart" in graph else graph.index("graph")
    return (
        "# Rule graph\n\nThe rules of the demo study and what feeds what, generated with "
        "`snakemake --configfile demo/config.yaml --rulegraph mermaid-js` (the real study has "
        "the same rules, with `fetch_folder` in place of `synthetic_source`, `download` and "
        "`extract` for the data).\n\n```mermaid\n" + graph[start:].strip() + "\n```\n"
    )


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_text(OUT / "config.md", config_reference())
    write_text(OUT / "cli.md", cli_reference(_parser()))
    write_text(OUT / "rules.md", rule_graph())


if __name__ == "__main__":
    main()
