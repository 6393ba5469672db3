"""Which tiles cover an image, and how many pixels they process (no torch: the cost model of
``fmdenoise plan`` prices tiled inference with the same tiles the inference runs)."""

from __future__ import annotations

import math


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles covering ``length`` (the last tile is flush with the end)."""
    if tile >= length:
        return [0]
    stride = tile - overlap
    if stride <= 0:
        raise ValueError(f"overlap {overlap} must be smaller than the tile {tile}")
    starts = list(range(0, length - tile, stride))
    return [*starts, length - tile]


def tiling_overhead(image_px: float, tile: int | None, overlap: int) -> float:
    """Pixels a tiled inference processes per pixel of a square image of ``image_px`` pixels
    (the tiles of :func:`tile_starts`); 1 for whole images."""
    side = round(math.sqrt(image_px))
    if not tile or tile >= side:
        return 1.0
    return (len(tile_starts(side, tile, overlap)) * tile / side) ** 2
