"""The Hagen data as GigaDB publishes it, served by a local HTTP server with directory
listings: discovery from the listing, the default globs of config.yaml, a fetch of only the
matching files (mirrors, resume, manual files), the split of unsplit stacks, hostile
listings, `inspect-source` on the URL and the plan's sizes from the listing."""

from __future__ import annotations

import copy
import logging

import pandas as pd
import pytest

from fmdenoise.cli import main
from fmdenoise.config import folder_urls, load_config, restrict_datasets
from fmdenoise.data.ingest import (
    REQUIRED_GLOBS,
    dataset_layout,
    ingest_dataset,
    source_globs,
    split_test,
)
from fmdenoise.data.remote import fetch_dataset_files, list_folder
from fmdenoise.errors import ConfigError, DownloadError
from fmdenoise.plan.rehearsal import serve
from fmdenoise.plan.source_sizes import listed_bytes

from ..conftest import ROOT
from ..gigadb import PUBLISHED, make_published_tree

CARE = "*/test*/{dataset}-care.tif"


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """(base URL, local tree) of a GigaDB-shaped folder served with directory listings."""
    tree = make_published_tree(tmp_path_factory.mktemp("gigadb") / "100888")
    with serve(tree.parent) as url:
        yield f"{url}/100888/", tree


@pytest.fixture
def config(site):
    cfg = copy.deepcopy(load_config(ROOT / "config.yaml"))
    cfg["hagen_url"], cfg["hagen_mirrors"] = site[0], []
    restrict_datasets(cfg, list(PUBLISHED))
    cfg["datasets"]["nucleus"] = copy.deepcopy(cfg["datasets"]["nucleus"])
    cfg["datasets"]["nucleus"]["test"]["provided"] = {"care": CARE}
    return cfg


def fetch(config, name, tmp_path, urls=None, **kwargs):
    return fetch_dataset_files(
        urls or folder_urls(config, "hagen"),
        source_globs(name, config["datasets"][name]),
        REQUIRED_GLOBS,
        tmp_path / "sources" / name,
        tmp_path / "cache",
        progress=False,
        retries=0,
        **kwargs,
    )


def test_listing_walks_the_numbered_folders_with_sizes(site):
    url, tree = site
    listing = list_folder(url)
    expected = {
        p.relative_to(tree).as_posix(): p.stat().st_size for p in tree.rglob("*") if p.is_file()
    }
    assert listing.files == expected
    assert "03-mito-confocal/mito-confocal-lowsnr.tif" in listing.files


def test_default_globs_fetch_only_their_files_and_ingest(site, config, tmp_path):
    tree = site[1]
    manifests = {}
    for name in PUBLISHED:
        fetched = fetch(config, name, tmp_path)
        # exactly this dataset's files: never actin-confocal's stack for mito-confocal
        assert all(f.rel.split("/")[0] == PUBLISHED[name][0] for f in fetched)
        assert all(name in f.rel.split("/")[-1] for f in fetched)
        assert all(f.origin.startswith(site[0]) for f in fetched)
        src = tmp_path / "sources" / name
        for f in fetched:
            assert (src / f.rel).read_bytes() == (tree / f.rel).read_bytes()
        manifests[name] = ingest_dataset(
            src, dataset_layout(name, config["datasets"][name]), tmp_path / "data" / name,
            val_fraction=0.15, seed=0, test_fraction=0.1,
        )  # fmt: skip
    assert sorted(f.rel for f in fetch(config, "nucleus", tmp_path / "again")) == [
        "07-nucleus/nucleus-highsnr.tif",
        "07-nucleus/nucleus-lowsnr.tif",
        "07-nucleus/test/nucleus-care.tif",
        "07-nucleus/test/nucleus-highsnr.tif",
        "07-nucleus/test/nucleus-lowsnr.tif",
    ]
    for name, (_, pages, test_pages) in PUBLISHED.items():
        m = manifests[name]
        low = m[m["role"] == "low"]
        counts = low.groupby("split").size().to_dict()
        n_test = test_pages or max(1, round(0.1 * pages))
        assert counts["test"] == n_test
        assert counts["train"] + counts["val"] == pages - (0 if test_pages else n_test)
        rule = m["split_rule"].unique()
        assert len(rule) == 1
        if test_pages:
            assert "the source's test files" in rule[0]
            assert (m["role"] == "provided/care").sum() == test_pages
        else:
            assert f"the last {n_test} of {pages} pairs" in rule[0]
            assert "split.test_fraction 0.1" in rule[0]


def test_split_of_unsplit_stacks_last_pages_deterministic_disjoint(site, config, tmp_path):
    assert split_test([f"{i:04d}" for i in range(79)], 0.1) == (
        [f"{i:04d}" for i in range(71)],
        [f"{i:04d}" for i in range(71, 79)],
    )  # the confocal stacks: 71 + 8, the last 8 pages as test (as public code does)
    with pytest.raises(ConfigError, match="test_fraction: null"):
        split_test(["a", "b", "c"], None)
    with pytest.raises(ConfigError, match="leave 1 for train and validation"):
        split_test(["a", "b", "c"], 0.5)
    fetch(config, "mito-confocal", tmp_path)
    runs = [
        ingest_dataset(
            tmp_path / "sources" / "mito-confocal",
            dataset_layout("mito-confocal", config["datasets"]["mito-confocal"]),
            tmp_path / f"data{i}",
            val_fraction=0.2,
            seed=3,
            test_fraction=0.25,
        )
        for i in range(2)
    ]
    pd.testing.assert_frame_equal(runs[0].drop(columns="path"), runs[1].drop(columns="path"))
    m = runs[0][runs[0]["role"] == "gt"]
    pages = {split: set(rows["source"]) for split, rows in m.groupby("split")}
    assert pages["test"] == {f"mito-confocal-highsnr.tif#{p}" for p in (9, 10, 11)}
    assert sum(len(p) for p in pages.values()) == 12  # every page once, none in two splits
    assert not pages["test"] & (pages["train"] | pages["val"])


def test_a_mirror_serves_when_the_first_url_refuses_or_answers_404(site, config, tmp_path, caplog):
    url = site[0]
    refused = "http://127.0.0.1:9/100888/"  # nothing listens on port 9
    missing = url.replace("100888", "no-such-folder")
    with caplog.at_level(logging.INFO, logger="fmdenoise.data.remote"):
        fetched = fetch(config, "actin-confocal", tmp_path, urls=[refused, missing, url])
    assert len(fetched) == 2 and all(f.origin.startswith(url) for f in fetched)
    log = caplog.text
    assert refused in log and "cannot list" in log
    assert "no-such-folder" in log and "404" in log
    assert f"from {url}03-actin-confocal/actin-confocal-lowsnr.tif" in log  # the URL it came from
    # hagen_mirrors are tried after hagen_url
    cfg = dict(config, hagen_url=refused, hagen_mirrors=[missing, url])
    assert folder_urls(cfg, "hagen") == [refused, missing, url]


def test_unreachable_site_says_where_to_put_the_files_and_uses_them(config, site, tmp_path):
    refused = ["http://127.0.0.1:9/a/", "http://127.0.0.1:9/b/"]
    manual = tmp_path / "manual" / "hagen"
    with pytest.raises(DownloadError) as err:
        fetch(config, "mito-confocal", tmp_path, urls=refused, manual_dir=manual)
    msg = str(err.value)
    assert all(u in msg for u in refused) and str(manual) in msg and "by hand" in msg
    assert not (tmp_path / "sources").exists()
    # the files put there by hand, at their paths under the site, are used offline
    for role in ("lowsnr", "highsnr"):
        rel = f"03-mito-confocal/mito-confocal-{role}.tif"
        (manual / rel).parent.mkdir(parents=True, exist_ok=True)
        (manual / rel).write_bytes((site[1] / rel).read_bytes())
    fetched = fetch(config, "mito-confocal", tmp_path, urls=refused, manual_dir=manual)
    assert {f.origin for f in fetched} == {
        str(manual / f"03-mito-confocal/mito-confocal-{r}.tif") for r in ("lowsnr", "highsnr")
    }


def test_a_glob_matching_nothing_names_the_url_the_glob_and_the_listing(site, config, tmp_path):
    config["datasets"]["nucleus"]["train"]["low"] = "*/{dataset}-noisy.tif"
    with pytest.raises(DownloadError) as err:
        fetch(config, "nucleus", tmp_path)
    msg = str(err.value)
    assert site[0] in msg and "'*/nucleus-noisy.tif'" in msg and "train.low" in msg
    assert "07-nucleus/nucleus-lowsnr.tif" in msg and "inspect-source" in msg
    assert not (tmp_path / "sources").exists() and not (tmp_path / "cache").exists()


def index(*links):
    return ("<html><body>" + "".join(f'<a href="{h}">{h}</a>' for h in links)).encode()


def test_links_leaving_the_folder_are_never_followed_or_written(http_server, tmp_path):
    payload = (ROOT / "demo" / "pretrained" / "drunet.pt").read_bytes()[:2000]
    http_server.routes.update({
        "/site/": (index(
            "../", "../secret.tif", "/etc/passwd", "http://example.org/evil-lowsnr.tif",
            "sub/../../escape-lowsnr.tif", "?C=N;O=D", "01-x/", "%2E%2E/dots-lowsnr.tif",
        ), "ok"),
        "/site/01-x/": (index("x-lowsnr.tif", "x-highsnr.tif", "/site/01-x/../../up.tif"), "ok"),
        "/site/01-x/x-lowsnr.tif": (payload, "ok"),
        "/site/01-x/x-highsnr.tif": (payload, "ok"),
        "/secret.tif": (b"secret", "ok"),
    })  # fmt: skip
    listing = list_folder(f"{http_server.url}/site/")
    assert sorted(listing.files) == ["01-x/x-highsnr.tif", "01-x/x-lowsnr.tif"]
    globs = {"train.low": "**/*-lowsnr.tif", "train.gt": "**/*-highsnr.tif"}
    out = tmp_path / "work"
    fetch_dataset_files(
        [f"{http_server.url}/site/"], globs, REQUIRED_GLOBS, out / "sources" / "x",
        out / "cache", progress=False, retries=0,
    )  # fmt: skip
    written = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert written == [
        "cache/01-x/x-highsnr.tif",
        "cache/01-x/x-lowsnr.tif",
        "sources/x/01-x/x-highsnr.tif",
        "sources/x/01-x/x-lowsnr.tif",
    ]
    asked = {path for path, _ in http_server.requests}
    assert "/secret.tif" not in asked and not any("passwd" in p for p in asked)


def test_an_interrupted_download_resumes(http_server, tmp_path):
    payload = bytes(range(256)) * 12_000  # 3 MB: the downloader writes 1 MiB blocks
    http_server.routes.update({
        "/site/": (index("01-x/"), "ok"),
        "/site/01-x/": (index("x-lowsnr.tif", "x-highsnr.tif"), "ok"),
        "/site/01-x/x-lowsnr.tif": (payload, "truncate"),  # the connection drops mid-file
        "/site/01-x/x-highsnr.tif": (payload, "ok"),
    })  # fmt: skip
    globs = {"train.low": "*/x-lowsnr.tif", "train.gt": "*/x-highsnr.tif"}

    def run(dest, retries=0):
        return fetch_dataset_files(
            [f"{http_server.url}/site/"], globs, REQUIRED_GLOBS, tmp_path / dest,
            tmp_path / "cache", progress=False, retries=retries, backoff=0, sleep=lambda s: None,
        )  # fmt: skip

    with pytest.raises(DownloadError, match=r"x-lowsnr\.tif"):
        run("src")
    part = tmp_path / "cache" / "01-x" / "x-lowsnr.tif.part"
    assert 0 < part.stat().st_size < len(payload)  # kept for the next run
    assert not (tmp_path / "src").exists()
    http_server.routes["/site/01-x/x-lowsnr.tif"] = (payload, "ok")
    before = len(http_server.requests)
    fetched = run("src")
    assert (tmp_path / "src" / "01-x" / "x-lowsnr.tif").read_bytes() == payload
    ranges = [r for p, r in http_server.requests[before:] if p.endswith("x-lowsnr.tif") and r]
    assert ranges == [f"bytes={1 << 20}-"]  # the whole blocks received before the drop
    assert not part.exists() and len({f.sha256 for f in fetched}) == 1
    # a second run reuses the verified cache: no transfer at all
    before = len(http_server.requests)
    run("src2")
    assert not [p for p, _ in http_server.requests[before:] if p.endswith(".tif")]


def test_pinned_checksum_mismatch_is_refused(site, config, tmp_path):
    rel = "03-actin-confocal/actin-confocal-lowsnr.tif"
    with pytest.raises(DownloadError, match="checksum mismatch"):
        fetch(config, "actin-confocal", tmp_path, checksums={rel: "0" * 64})
    assert not (tmp_path / "sources").exists() and not (tmp_path / "cache" / rel).exists()


def test_inspect_source_on_the_url(site, config, tmp_path, capsys):
    import yaml

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config))
    assert main(["inspect-source", site[0], "--config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "03-mito-confocal/mito-confocal-lowsnr.tif: 12 page(s) of 24x32 float32" in out
    assert "readme_100888.txt" in out and "MB)" in out
    for name in PUBLISHED:
        assert f"dataset {name}: OK" in out
    assert "no test files: the last 0.1 of the train pairs are test" in out
    assert "test.provided.care" in out and "3 image(s) from 1 file(s)" in out
    # a glob that matches two datasets' stacks is a problem, named with the culprit
    config["datasets"]["mito-confocal"]["train"]["low"] = "*/*-lowsnr.tif"
    path.write_text(yaml.safe_dump(config))
    assert main(["inspect-source", site[0], "--config", str(path)]) == 0
    assert "dataset mito-confocal: PROBLEM" in capsys.readouterr().out
    assert main(["inspect-source", "http://127.0.0.1:9/x/"]) == 2
    assert "cannot list" in capsys.readouterr().err


def test_plan_takes_download_sizes_from_the_listing(site, config):
    sizes, notes = listed_bytes(config)
    tree = site[1]
    for name, (folder, _, _) in PUBLISHED.items():
        files = [p for p in (tree / folder).rglob(f"{name}-*.tif")]
        assert sizes[name] == sum(p.stat().st_size for p in files)
    assert notes == [f"hagen: download sizes from the listing of {site[0]}"]
    offline = dict(config, hagen_url="http://127.0.0.1:9/", hagen_mirrors=[])
    assert listed_bytes(offline)[0] == {}
    assert "sizes from datasets.*.expected (listing failed" in listed_bytes(offline)[1][0]
