"""Partition time limits: chained submissions of training jobs, capped requests elsewhere,
what the workflow asks SLURM for, and what `fmdenoise plan` says."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

from fmdenoise.config import load_config, validate
from fmdenoise.costs.time_limits import chain, chained_retries, rule_chain
from fmdenoise.errors import ConfigError
from fmdenoise.plan.report import format_plan, make_plan
from fmdenoise.plan.site import (
    parse_gres_gpus,
    parse_sinfo,
    parse_sinfo_nodes,
    parse_time,
)
from fmdenoise.settings import StudySettings

from ..conftest import ROOT

#: the library takes the typed view of a validated config
typed = StudySettings.from_config


def test_chain_by_hand():
    # a 24 h run on a 4 h partition, SIGTERM 10 min ahead: 230 usable minutes per submission
    c = chain(1440, 240, 600, resumable=True)
    assert (c.runtime, c.submissions, c.signal) == (240, 7, "--signal=TERM@600")
    assert chain(200, 240, 600, True) == chain(200, 240, 600, True)
    assert (chain(200, 240, 600, True).submissions, chain(200, 240, 600, True).runtime) == (1, 200)
    assert chain(200, None, 600, True).signal is None  # no limit, nothing asked of SLURM
    over = chain(300, 240, 600, resumable=False)  # cannot continue: capped, flagged
    assert (over.runtime, over.submissions, over.over_limit, over.signal) == (240, 1, True, None)


def real(**train):
    cfg = load_config(ROOT / "config.yaml")
    cfg["resources"]["train"].update(train)
    return validate(cfg)


def test_rule_chain_reads_the_config_and_retries_grow():
    cfg = real(time_limit=240, signal_lead=600)  # runtime 1440 in config.yaml
    assert rule_chain(typed(cfg), "train", 1440).submissions == 7
    assert rule_chain(typed(cfg), "rung", 1440).submissions == 7  # rung jobs are training jobs
    assert chained_retries(typed(cfg), "train") == 2 + 6  # the rule's 2, and the chain
    assert chained_retries(typed(cfg), "rung") == 2 + 6
    assert chained_retries(typed(real()), "train") == 2  # no limit: as before
    assert chained_retries(typed(cfg), "predict") == 0  # not resumable: never chained
    with pytest.raises(ConfigError, match=r"resources\.train\.signal_lead: 600 s"):
        rule_chain(typed(real(time_limit=10, signal_lead=600)), "train", 60)


def test_plan_shows_chained_submissions():
    plan = make_plan(typed(real(time_limit=240)))
    train = plan["rules"]["train"]
    assert train["chained"] == 7 and train["submissions"] == 7 * train["jobs"]
    assert train["runtime_request_h"] == 4.0
    free = make_plan(typed(real()))
    # rung jobs (config.yaml's halving search) are training jobs too: they chain alike
    rung = plan["rules"]["rung"]
    extra = (rung["submissions"] - rung["jobs"]) if rung["chained"] > 1 else 0
    assert plan["submissions"] - free["submissions"] == 6 * train["jobs"] + extra
    assert "up to 7 chained submissions per job" in format_plan(plan)


def test_workflow_asks_slurm_for_the_signal_and_the_capped_runtime(tmp_path):
    cfg = yaml.safe_load((ROOT / "demo" / "config.yaml").read_text())
    cfg["resources"]["train"] = {"runtime": 30, "time_limit": 10, "signal_lead": 60}
    path = tmp_path / "limited.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "-s", str(ROOT / "Snakefile"),
         "--directory", str(tmp_path), "--configfile", str(path), "--cores", "1"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    requests = re.findall(r"^rule (?:train|rung):\n(?:    .*\n)*?    resources: (.*)$", out, re.M)
    # what a dry run knows of the demo's search: rung 0 of 4 models x 2 losses x 2 lrs on
    # nucleus-demo (the rest follows the promotions and selections); rung jobs are training
    assert len(requests) == 16
    for resources in requests:
        assert "runtime=10" in resources and "slurm_extra=--signal=TERM@60" in resources


SINFO = """debug* infinite
short 1:00
gpu4h 4:00:00
long 2-00:00:00
"""


def test_sinfo_time_limits_parsed():
    assert parse_sinfo(SINFO) == {"*": None, "debug": None, "short": 1, "gpu4h": 240, "long": 2880}
    assert [parse_time(t) for t in ("30", "10:30", "1-12", "1-12:30", "UNLIMITED")] == [
        30, 10, 2160, 2190, None,
    ]  # fmt: skip


def test_plan_says_what_does_not_fit_the_site():
    cfg = real(slurm_partition="gpu4h")  # train asks 1440 min of a 4 h partition
    plan = make_plan(typed(cfg), partitions=parse_sinfo(SINFO))
    notes = plan["site"]["notes"]
    assert any(
        n.startswith("train: runtime request 1440 min exceeds partition 'gpu4h'")
        and "set resources.train.time_limit: 240" in n
        for n in notes
    ), notes
    assert "DOES NOT FIT: train:" in format_plan(plan)
    fitted = make_plan(
        typed(real(slurm_partition="gpu4h", time_limit=240)), partitions=parse_sinfo(SINFO)
    )
    assert not [n for n in fitted["site"]["notes"] if n.startswith("train")]
    missing = make_plan(typed(real(slurm_partition="a100")), partitions=parse_sinfo(SINFO))
    assert "train: partition 'a100' is not on this site (sinfo)" in missing["site"]["notes"]


# `sinfo -h -e -o '%P %c %m %G'` of a site with two GPU node types and a CPU partition
SINFO_NODES = """cpu* 64 256000 (null)
gpu4h 32 192000 gpu:a100:4(S:0-1)
gpu4h 16 96000+ gpu:v100:2,mps:200
long 8 32000 (null)
"""


def test_sinfo_node_shapes_parsed():
    assert [parse_gres_gpus(g) for g in ("(null)", "gpu:2", "gpu:a100:4(S:0-1)",
                                         "gpu:v100:2,mps:200", "mps:100", "gpu:a:1,gpu:b:2")] == [
        0, 2, 4, 2, 0, 3,
    ]  # fmt: skip
    nodes = parse_sinfo_nodes(SINFO_NODES)
    assert nodes["*"] == nodes["cpu"] == [{"cpus": 64, "mem_mb": 256000, "gpus": 0}]
    assert nodes["gpu4h"] == [
        {"cpus": 32, "mem_mb": 192000, "gpus": 4},
        {"cpus": 16, "mem_mb": 96000, "gpus": 2},
    ]


def test_plan_names_requests_no_node_can_hold():
    """train asks 8 CPUs, 32 GB, 1 GPU: none on the CPU-only default partition, fits gpu4h;
    on `long` (8 CPUs, 32 GB, no GPU) the GPU is what is missing."""
    nodes = parse_sinfo_nodes(SINFO_NODES)
    plan = make_plan(typed(real()), nodes=nodes)
    notes = [n for n in plan["site"]["notes"] if n.startswith("train:")]
    assert notes == [
        "train: a job asks for 8 CPUs, 32000 MB and 1 GPU(s); no node of the default partition "
        "has that (largest: 64 CPUs, 256000 MB, 0 GPUs), so SLURM would keep it pending for ever "
        "(Reason=PartitionConfig); lower resources.train.cpus/mem_mb/gpu or pick another "
        "partition"
    ]
    assert "DOES NOT FIT: train: a job asks for 8 CPUs" in format_plan(plan)
    assert "SLURM node shapes (sinfo -e): cpu 64 CPUs/256000 MB/0 GPUs" in format_plan(plan)
    fits = make_plan(typed(real(slurm_partition="gpu4h")), nodes=nodes)
    assert not [n for n in fits["site"]["notes"] if n.startswith("train:")]
    no_gpu = make_plan(typed(real(slurm_partition="long")), nodes=nodes)
    assert any(n.startswith("train:") and "no node of partition 'long'" in n
               for n in no_gpu["site"]["notes"])  # fmt: skip


SCONTROL = """Configuration data as of 2026-11-28T13:00:00
MaxArraySize            = 1001
MaxJobCount             = 10000
MaxStepCount            = 40000
MinJobAge               = 300 sec
"""


def test_queue_limits_from_scontrol_sacctmgr_and_config(monkeypatch):
    from fmdenoise.plan import site

    assert site.parse_scontrol_config(SCONTROL) == {"MaxArraySize": 1001, "MaxJobCount": 10000}
    # association lines (one per account) and QOS lines; empty fields mean no limit
    assert site.parse_max_submit("500\n\n200\n") == 200
    assert site.parse_max_submit("\n\n") is None
    answers = {
        "scontrol": SCONTROL,
        "sacctmgr assoc": "300\n",
        "sacctmgr qos": "|\n250\n",
    }

    def fake_run(cmd, timeout):
        key = cmd[0] if cmd[0] == "scontrol" else f"{cmd[0]} {cmd[3]}"
        return answers.get(key)

    monkeypatch.setattr(site, "_run", fake_run)
    limits = site.queue_limits({"site": {"max_submit_jobs": 5, "max_array_size": 7}})
    assert {k: v["value"] for k, v in limits.items()} == {
        "MaxArraySize": 1001,
        "MaxJobCount": 10000,
        "MaxSubmitJobs": 250,
    }  # fmt: skip  (SLURM's answers take precedence over the config)
    assert limits["MaxSubmitJobs"]["from"] == "sacctmgr"
    assert site.queue_bound(limits) == 100  # the profile's own bound is the smallest
    # a site without accounting and a login node without scontrol: the config's values
    monkeypatch.setattr(site, "_run", lambda cmd, timeout: None)
    limits = site.queue_limits({"site": {"max_submit_jobs": 40, "max_array_size": None}})
    assert limits == {"MaxSubmitJobs": {"value": 40, "from": "config site.max_submit_jobs"}}
    assert site.queue_bound(limits) == 40
    assert site.queue_bound({"MaxJobCount": {"value": 60, "from": "x"}}) == 30
    assert site.queue_limits({}) == {} and site.queue_bound({}) == 100


def test_plan_prints_the_queue_bound():
    plan = make_plan(
        typed(real()), partitions={}, queue={"MaxSubmitJobs": {"value": 40, "from": "x"}}
    )
    assert plan["site"]["jobs"] == 40
    assert "submit with --jobs 40" in format_plan(plan)
