"""Forward speed of the full-size architectures on CPU, as a fraction of the machine's peak.

For each model at its published size, on one 256x256 grayscale image (and 512x512 with
--size 512): forward time under ``torch.inference_mode``, megapixels/s, and achieved GFLOP/s
(the FLOPs of the *official* forward, counted with ``torch.utils.flop_counter.FlopCounterMode``:
DRUNet 277, Restormer 309, KBNet 234 GFLOP at 256x256, divided by our time), in NCHW and in
channels_last. In the same run, the float32 2048x2048 matmul GFLOP/s is measured as the peak,
and each model's fraction of it is printed next to the targets. The machine is noisy: every
timing is the minimum of several runs, and the peak is measured after every model; fractions
use the highest peak seen in the run (the conservative choice).

    python benchmarks/models.py [--size 256] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from fmdenoise.models import GRAY_DEFAULTS, build

#: GFLOP of the official implementations' forward at 256x256 (FlopCounterMode)
OFFICIAL_GFLOP_256 = {"drunet": 277.0, "restormer": 309.0, "kbnet": 234.0}
#: fraction of peak the official implementations reach on this machine (NCHW, channels_last)
OFFICIAL_FRACTION = {"drunet": (0.64, 0.81), "restormer": (0.09, 0.16), "kbnet": (0.11, 0.10)}
TARGET = {"drunet": 0.8, "restormer": 0.25, "kbnet": 0.2}


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def matmul_peak(repeats: int = 5) -> float:
    a = torch.randn(2048, 2048)
    b = torch.randn(2048, 2048)
    t = best_time(lambda: a @ b, repeats)
    return 2 * 2048**3 / t / 1e9


def count_gflop(model: torch.nn.Module, x: torch.Tensor) -> float:
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return counter.get_total_flops() / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--models", nargs="*", default=list(OFFICIAL_GFLOP_256))
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"image {args.size}x{args.size}"
    )
    scale = (args.size / 256) ** 2
    rows = []
    for arch in args.models:
        model = build(arch, **GRAY_DEFAULTS[arch]).eval()
        in_ch = 2 if arch == "drunet" else 1
        x = torch.rand(1, in_ch, args.size, args.size)
        ours = count_gflop(model, x)
        nominal = OFFICIAL_GFLOP_256[arch] * scale
        for layout in ("NCHW", "channels_last"):
            fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
            m = model.to(memory_format=fmt)
            xi = x.contiguous(memory_format=fmt)
            with torch.inference_mode():
                t = best_time(lambda m=m, xi=xi: m(xi), args.repeats)
            peak = matmul_peak()
            achieved = nominal / t
            rows.append(
                (arch, layout, t, args.size**2 / t / 1e6, ours, achieved, peak, achieved / peak)
            )
            print(f"  measured {arch} {layout}: {t:.3f}s", flush=True)
    print()
    print(
        f"{'model':10} {'layout':14} {'time s':>8} {'Mpx/s':>7} {'our GFLOP':>9} "
        f"{'GFLOP/s':>8} {'peak':>7} {'fraction':>8} {'official':>8} {'target':>6}"
    )
    top = max(r[6] for r in rows)
    rows = [(*r[:7], r[5] / top) for r in rows]
    for arch, layout, t, mpx, ours, achieved, peak, frac in rows:
        official = OFFICIAL_FRACTION[arch][layout == "channels_last"]
        print(
            f"{arch:10} {layout:14} {t:8.3f} {mpx:7.3f} {ours:9.1f} {achieved:8.1f} "
            f"{peak:7.1f} {frac:8.2f} {official:8.2f} {TARGET[arch]:6.2f}"
        )
    print()
    for arch in args.models:
        best = max(r[7] for r in rows if r[0] == arch)
        verdict = "meets" if best >= TARGET[arch] else "MISSES"
        print(f"{arch}: best fraction of peak {best:.2f} {verdict} the target {TARGET[arch]:.2f}")


if __name__ == "__main__":
    main()
