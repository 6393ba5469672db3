"""The console command's config check and fetch."""

from __future__ import annotations

import hashlib

import yaml

from fmdenoise.cli import main

from ..conftest import ROOT


def test_check_config_prints_defaults(capsys):
    assert main(["check-config", str(ROOT / "demo" / "config.yaml")]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["training"]["schedule"] == "cosine"  # a schema default


def test_check_config_error_exit_code(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: x\n")
    assert main(["check-config", str(bad)]) == 2
    assert "bad.yaml" in capsys.readouterr().err


def test_fetch(http_server, tmp_path, capsys):
    http_server.routes["/f.bin"] = (b"abc" * 1000, "ok")
    digest = hashlib.sha256(b"abc" * 1000).hexdigest()
    assert (
        main(["fetch", f"{http_server.url}/f.bin", str(tmp_path / "f.bin"), "--sha256", digest])
        == 0
    )
    assert capsys.readouterr().out.strip() == digest
