"""How big each dataset of a study is, before or after it is ingested.

Once ``data/<dataset>/manifest.csv`` exists the sizes are measured from it; before that they
come from the demo's ``synthetic_source`` or from ``datasets.<name>.expected`` in the config
(the published pair counts and image sizes of the real study). Every size says which.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd

from fmdenoise.errors import ConfigError
from fmdenoise.settings import StudySettings


@dataclasses.dataclass(frozen=True)
class DatasetSize:
    """Image counts and megapixels of one dataset (train side = the authors' train, before the
    validation split)."""

    train_images: int
    val_images: int
    test_images: int
    train_mpx: float  # low images of the train and val splits
    test_mpx: float  # low images of the test split
    max_image_px: int
    provided: int  # provided method outputs on the test side
    source: str  # manifest | synthetic_source | expected

    @property
    def files(self) -> int:
        """Image files ingest writes: low and ground truth of every image, provided outputs."""
        return 2 * (self.train_images + self.val_images + self.test_images) + (
            self.provided * self.test_images
        )

    @property
    def data_mpx(self) -> float:
        """Every plane ingest writes: low and ground truth of all splits, provided outputs."""
        return 2 * (self.train_mpx + self.test_mpx) + self.provided * self.test_mpx


def val_count(n_train_side: int, fraction: float) -> int:
    """Images carved for validation from the train side (as :func:`split_train_val`)."""
    return min(max(1, round(fraction * n_train_side)), n_train_side - 1)


def from_manifest(path: Path) -> DatasetSize:
    m = pd.read_csv(path)
    low = m[m["role"] == "low"]
    px = low["height"] * low["width"]
    by_split = low.groupby("split").size().to_dict()
    train = float(px[low["split"] != "test"].sum()) / 1e6
    provided = m["role"].str.startswith("provided/").groupby(m["role"]).any().sum()
    return DatasetSize(
        train_images=int(by_split.get("train", 0)),
        val_images=int(by_split.get("val", 0)),
        test_images=int(by_split.get("test", 0)),
        train_mpx=train,
        test_mpx=float(px[low["split"] == "test"].sum()) / 1e6,
        max_image_px=int(px.max()),
        provided=int(provided),
        source="manifest",
    )


def _from_counts(
    n_train: int, n_test: int, h: int, w: int, provided: int, fraction: float, source: str
) -> DatasetSize:
    n_val = val_count(n_train, fraction)
    return DatasetSize(
        train_images=n_train - n_val,
        val_images=n_val,
        test_images=n_test,
        train_mpx=n_train * h * w / 1e6,
        test_mpx=n_test * h * w / 1e6,
        max_image_px=h * w,
        provided=provided,
        source=source,
    )


def dataset_sizes(settings: StudySettings, workdir: str | Path = ".") -> dict[str, DatasetSize]:
    """Size of every dataset of a study (measured where ingested under ``workdir``)."""
    out = {}
    fraction = settings.split.val_fraction
    synth = settings.config.get("synthetic_source")
    for name, ds in settings.datasets.items():
        manifest = Path(workdir) / settings.results / "data" / name / "manifest.csv"
        provided = len(ds["test"].get("provided", {}))
        if manifest.is_file():
            out[name] = from_manifest(manifest)
        elif synth:
            n, t, s = synth["n_train"], synth["n_test"], synth["size"]
            out[name] = _from_counts(n, t, s, s, provided, fraction, "synthetic_source")
        elif "expected" in ds:
            e = ds["expected"]
            out[name] = _from_counts(
                e["train_pairs"],
                e["test_pairs"],
                e["height"],
                e["width"],
                provided,
                fraction,
                "expected",
            )
        else:
            raise ConfigError(
                f"datasets.{name}.expected: needed to plan before the data is ingested "
                "(train_pairs, test_pairs, height, width)"
            )
    return out
