"""How much of CPU inference is the kernel handing out memory, and which switch wins it back?

On these machines a full-size model's CPU inference spends about half of its CPU time in the
kernel (``stime`` close to ``utime``, ~250,000 minor page faults a second): glibc serves
every large tensor with a fresh ``mmap`` and returns it with ``munmap`` when freed, so the
next tensor of that size faults its pages in (and zeroes them) again. The variants, each
the same measurement (``python -m fmdenoise.plan.calibrate infer``) in its own process, in
turns, in one run:

- ``no-thp``: torch and glibc as they come (``THP_MEM_ALLOC_ENABLE=0``);
- ``thp``: what fmdenoise runs with, ``THP_MEM_ALLOC_ENABLE=1``: torch's own switch (c10
  advises transparent huge pages on its CPU buffers of 2 MB and more: 512x fewer faults; the
  kernel still zeroes the pages);
- ``no-mmap``: ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=<huge>``
  (large blocks come from the heap and stay there after ``free``);
- ``hugetlb``: ``GLIBC_TUNABLES=glibc.malloc.hugetlb=1`` (glibc's malloc asks for the same
  huge pages itself).

Printed per run: s/Mpx, user and system CPU seconds, minor page faults, peak RSS; then the
median s/Mpx per variant and its ratio to ``no-thp``.

    python benchmarks/cpu_allocator.py [--arch kbnet] [--size 512] [--rounds 2]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics

from fmdenoise.plan.calibrate import run_measurement

HUGE = str(1 << 40)
#: variant: extra environment of the measuring process. fmdenoise sets THP_MEM_ALLOC_ENABLE=1
#: unless it is set (fmdenoise/__init__.py), so the others set it to 0.
VARIANTS: dict[str, dict[str, str]] = {
    "no-thp": {"THP_MEM_ALLOC_ENABLE": "0"},
    "thp": {},
    "no-mmap": {
        "THP_MEM_ALLOC_ENABLE": "0",
        "GLIBC_TUNABLES": f"glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold={HUGE}",
    },
    "hugetlb": {"THP_MEM_ALLOC_ENABLE": "0", "GLIBC_TUNABLES": "glibc.malloc.hugetlb=1"},
}


def run_once(arch: str, size: int, tile: int, extra: dict[str, str]) -> dict[str, float]:
    drop = ("GLIBC_TUNABLES", "THP_MEM_ALLOC_ENABLE")
    env = {k: v for k, v in os.environ.items() if k not in drop} | extra
    args = ["infer", "--arch", arch, "--size", str(size), "--tile", str(tile), "--device", "cpu"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    row = run_measurement(args, env=env)[0]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {
        "s_per_mpx": row["value"],
        "user_s": after.ru_utime - before.ru_utime,
        "sys_s": after.ru_stime - before.ru_stime,
        "minflt": after.ru_minflt - before.ru_minflt,
        "peak_mb": row["peak_mem_mb"],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="kbnet")
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--tile", type=int, default=0, help="0: whole image")
    p.add_argument("--rounds", type=int, default=2)
    a = p.parse_args()
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    print(f"{a.arch} full size, {a.size}x{a.size}, tile {a.tile or 'none'}, {a.rounds} rounds")
    head = ("variant", 9), ("round", 5), ("s/Mpx", 8), ("user s", 7), ("sys s", 7)
    head += ("minflt", 10), ("peak MB", 8)
    print(" ".join(f"{h:>{w}}" for h, w in head))
    for r in range(a.rounds):
        for name, extra in VARIANTS.items():
            m = run_once(a.arch, a.size, a.tile, extra)
            rates[name].append(m["s_per_mpx"])
            print(
                f"{name:>9} {r:>5} {m['s_per_mpx']:>8.2f} {m['user_s']:>7.1f} {m['sys_s']:>7.1f} "
                f"{m['minflt']:>10.0f} {m['peak_mb']:>8.0f}"
            )
    base = statistics.median(rates["no-thp"])
    print("\nmedian s/Mpx and ratio to no-thp:")
    for name, values in rates.items():
        med = statistics.median(values)
        print(f"{name:>9} {med:>8.2f}  x{med / base:.2f}")


if __name__ == "__main__":
    main()
