"""The developer tooling stays consistent: the pre-commit hooks are the Makefile's lint
commands (one list of checks), the type checker is configured for the library."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

from ..conftest import ROOT


def lint_recipe() -> list[str]:
    """The commands of the Makefile's ``lint`` target, with ``$(VENV)/bin/`` as ``.venv/bin/``."""
    text = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^lint:.*\n((?:\t.*\n)+)", text, re.M)
    assert recipe, "Makefile: no lint target"
    return [line.strip().replace("$(VENV)/bin/", ".venv/bin/") for line in recipe[1].splitlines()]


def test_pre_commit_hooks_are_the_lint_commands():
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    hooks = [h for repo in config["repos"] for h in repo["hooks"]]
    assert {h["id"] for h in hooks} == {"ruff-check", "ruff-format", "snakefmt", "mypy"}
    recipe = lint_recipe()
    for hook in hooks:
        assert hook["language"] == "system" and hook["pass_filenames"] is False, hook["id"]
        assert hook["entry"] in recipe, f"{hook['id']}: {hook['entry']!r} not in make lint"


def test_pre_commit_config_is_valid():
    pre_commit = Path(sys.executable).parent / "pre-commit"
    proc = subprocess.run(
        [str(pre_commit), "validate-config", ".pre-commit-config.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_type_checker_covers_the_library():
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["files"] == ["src/fmdenoise"]
    assert mypy["disallow_untyped_defs"] and mypy["check_untyped_defs"]
    assert ".venv/bin/mypy" in lint_recipe()
