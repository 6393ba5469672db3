"""Tiled versus whole-image inference of full-size DRUNet on one large image, on CPU.

Each mode runs in its own process (so that its peak resident memory is its own): whole-image
inference and tiled inference (``--tile``, ``--overlap``). Printed: seconds, megapixels/s,
peak RSS, and the tiled/whole throughput ratio, plus the largest difference between the two
outputs. Defaults: 2048x2048, tiles of 512 overlapping by 64.

    python benchmarks/inference.py [--size 2048] [--tile 512] [--overlap 64]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def worker(size: int, tile: int | None, overlap: int, out: str) -> None:
    import torch

    from fmdenoise.evaluate.inference import denoise_normalized
    from fmdenoise.models import GRAY_DEFAULTS, build
    from fmdenoise.models.wrapper import Denoiser

    torch.manual_seed(0)
    model = Denoiser(build("drunet", **GRAY_DEFAULTS["drunet"]), "drunet").eval()
    model = model.to(memory_format=torch.channels_last)
    x = np.random.default_rng(0).random((size, size), dtype=np.float32)
    t = time.perf_counter()
    y = denoise_normalized(model, x, tile=tile, overlap=overlap)
    seconds = time.perf_counter() - t
    np.save(out, y)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=2048)
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--overlap", type=int, default=64)
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        size, tile, overlap, out = args.worker
        worker(int(size), None if tile == "none" else int(tile), int(overlap), out)
        return
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, tile in (("whole", "none"), ("tiled", str(args.tile))):
            out = str(Path(tmp) / f"{mode}.npy")
            proc = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(args.size),
                    tile,
                    str(args.overlap),
                    out,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            results[mode]["out"] = np.load(out)
    mpx = args.size**2 / 1e6
    print(
        f"DRUNet (full size) on {args.size}x{args.size}, CPU; "
        f"tiles {args.tile}, overlap {args.overlap}"
    )
    for mode, r in results.items():
        print(
            f"  {mode:6} {r['seconds']:8.1f} s  {mpx / r['seconds']:6.3f} Mpx/s  "
            f"peak RSS {r['rss_mb']:7.0f} MB"
        )
    ratio = results["whole"]["seconds"] / results["tiled"]["seconds"]
    diff = np.abs(results["whole"]["out"] - results["tiled"]["out"])
    print(
        f"tiled / whole throughput: {ratio:.2f}; peak RSS tiled / whole: "
        f"{results['tiled']['rss_mb'] / results['whole']['rss_mb']:.2f}"
    )
    print(f"max |tiled - whole| {diff.max():.2e} (mean {diff.mean():.2e}) on the normalised scale")


if __name__ == "__main__":
    main()
