"""The conda environment of the rules pins what the project is tested with."""

from __future__ import annotations

import tomllib

import yaml
from packaging.requirements import Requirement

from ..helpers import ROOT


def pins() -> dict[str, str]:
    out = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            out[name.lower().replace("_", "-")] = version
    return out


def test_conda_env_agrees_with_pyproject_and_constraints():
    env = yaml.safe_load((ROOT / "envs" / "fmdenoise.yaml").read_text())
    assert env["channels"][0] == "conda-forge"
    conda = [d for d in env["dependencies"] if isinstance(d, str)]
    assert "python=3.11" in conda
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "--editable .." in pip  # the project itself, from the checkout
    pinned = {}
    for line in pip:
        if not line.startswith("-"):
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", line
            pinned[req.name.lower().replace("_", "-")] = spec.version
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    constraints = pins()
    for dep in project["dependencies"]:
        req = Requirement(dep)
        name = req.name.lower().replace("_", "-")
        if name == "snakemake":
            continue  # the rules run inside snakemake's own job; it is not in the rule env
        assert name in pinned, f"{name} (pyproject) missing from envs/fmdenoise.yaml"
        assert req.specifier.contains(pinned[name]), (name, pinned[name], str(req.specifier))
        if name != "torch":  # torch is pinned by the Makefile's TORCH_SPEC
            assert pinned[name] == constraints[name], (name, pinned[name], constraints[name])
    assert pinned["torch"] == "2.13.0"


def test_every_rule_uses_the_env_and_has_log_and_benchmark():
    for smk in (ROOT / "rules").glob("*.smk"):
        text = smk.read_text()
        rules = text.count("\nrule ") + text.count("\ncheckpoint ") + text.startswith("rule ")
        if not rules:
            continue
        for directive in ('conda:\n        "../envs/fmdenoise.yaml"', "log:", "benchmark:"):
            assert text.count(directive) == rules, (smk.name, directive)
