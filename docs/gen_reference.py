"""Write the generated reference pages into docs/reference/ (run before `mkdocs build`):
the configuration reference from the schema, the CLI reference from the argparse parsers and
the demo's rule graph from `snakemake --rulegraph mermaid-js` with the table of what each
rule's jobs ask for."""

from __future__ import annotations

import re
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
    return (
        "# Rule graph\n\nThe rules of the demo study and what feeds what, generated with "
        "`snakemake --configfile demo/config.yaml --rulegraph mermaid-js` (the real study has "
        "the same rules, with `fetch_folder` in place of `synthetic_source`, `download` and "
        "`extract` for the data).\n\n```mermaid\n" + stable_graph(graph) + "\n```\n"
    )


def resources_table() -> str:
    """Which ``resources.<entry>`` each rule's jobs take, from fmdenoise.costs.rules.RULES
    (what the rules and ``fmdenoise plan`` both read)."""
    from fmdenoise.costs.rules import RULES

    lines = [
        "\n## What each rule's jobs ask for\n",
        "Each rule takes the `resources.<entry>` below (`resources.default` when the config has "
        "no such entry); a *sized* rule asks for its estimate x `planning.margin`, never below "
        "the entry; the others ask for the entry as it stands. GPUs: the entry's `gpu`, for "
        "predict only for methods that are networks. Resumable rules continue from `last.pt` "
        "when a partition's time limit chains them. Generated from "
        "`fmdenoise.costs.rules.RULES`, which the rules and `fmdenoise plan` both read.\n",
        "| rule | entry | sized | GPUs | resumable | retries |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name, r in RULES.items():
        yes = {True: "yes", False: ""}
        lines.append(
            f"| `{name}` | `{r.entry}` | {yes[r.sized]} | {yes[r.gpu]} | {yes[r.resumable]} "
            f"| {r.retries} |"
        )
    return "\n".join(lines) + "\n"


def stable_graph(graph: str) -> str:
    """Snakemake's mermaid rule graph, the same text on every run: its node numbers and
    colours follow the order in which the DAG was built, which varies; here the rules are
    numbered by name, the edges sorted, the per-run colours left out."""
    names = dict(re.findall(r"^\s*(id\d+)\[(\w+)\]", graph, re.M))
    edges = re.findall(r"^\s*(id\d+) --> (id\d+)", graph, re.M)
    ids = {name: f"id{i}" for i, name in enumerate(sorted(names.values()))}
    lines = ["flowchart TB"] + [f"\t{ids[n]}[{n}]" for n in sorted(names.values())]
    pairs = sorted((ids[names[a]], ids[names[b]]) for a, b in edges)
    return "\n".join(lines + [f"\t{a} --> {b}" for a, b in pairs])


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    write_text(OUT / "config.md", config_reference())
    write_text(OUT / "cli.md", cli_reference(_parser()))
    write_text(OUT / "rules.md", rule_graph() + resources_table())


if __name__ == "__main__":
    main()
