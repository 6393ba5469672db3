"""What every entry point (the command line, each workflow job) sets up in its own process
before any work: nothing here runs on ``import fmdenoise``, so that a library import never
changes the environment of the program that imports it.

:func:`prefer_huge_pages` asks torch for transparent huge pages on its large CPU buffers
(``THP_MEM_ALLOC_ENABLE``, torch >= 2.4: ``madvise(MADV_HUGEPAGE)`` on buffers of 2 MB and
more) unless the user set the variable. Without it, full-size CPU inference spends about half
of its CPU time in the kernel faulting in the pages of every freshly mapped tensor; with it,
0.70x the time for 6 % more peak memory (``benchmarks/cpu_allocator.py``). torch reads the
variable once, at its first CPU allocation (not at import), so an entry point calls this
before it allocates any tensor; ``THP_MEM_ALLOC_ENABLE=0`` turns it off. Numbers are unchanged
(only where pages come from).
"""

from __future__ import annotations

import os


def prefer_huge_pages() -> None:
    """Set ``THP_MEM_ALLOC_ENABLE=1`` unless the user chose a value."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
