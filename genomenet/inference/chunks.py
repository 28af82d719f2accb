"""Chunks of work: consecutive tiles of one region, the unit that is computed, saved as a part and resumed.

A chunk's tiles are read on the region's strand; their kept bases form one genomic range. Reading the same range on
the other strand as well (reverse-complement averaging) runs the other strand's tiles that keep bases in it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Region
from genomenet.errors import InputFileError
from genomenet.inference.runner import BaseOutputs, InferenceModel, run_tiles
from genomenet.inference.tiling import Tile, tile_region


@dataclass(frozen=True)
class Chunk:
    """Consecutive tiles of region number `region`, whose kept bases form the genomic range [start, end)."""

    region: int
    tiles: tuple[Tile, ...]

    @property
    def start(self) -> int:
        return min(t.keep_start for t in self.tiles)

    @property
    def end(self) -> int:
        return max(t.keep_end for t in self.tiles)


@dataclass(frozen=True)
class Tiling:
    """How a command cuts regions into windows: bases per window, least context per base, the model's kind."""

    window: int
    context: int
    causal: bool
    k: int

    def tiles(self, genome: PreparedGenome, region: Region, strand: str) -> list[Tile]:
        try:
            return tile_region(region.chrom, region.start, region.end, strand, genome.lengths[region.chrom],
                               self.window, self.context, self.causal, self.k)
        except ValueError as err:
            raise InputFileError(f"region {region.chrom}:{region.start}-{region.end}: {err}") from None


def plan_chunks(genome: PreparedGenome, regions: list[Region], tiling: Tiling, max_bases: int) -> list[Chunk]:
    """Each region's tiles (on its strand, in reading order) in groups keeping at most `max_bases` bases (at least
    one tile). Depends only on the inputs and options, so a rerun plans the same chunks."""
    chunks = []
    for index, region in enumerate(regions):
        group, kept = [], 0
        for tile in tiling.tiles(genome, region, region.strand):
            if group and kept + tile.keep_end - tile.keep_start > max_bases:
                chunks.append(Chunk(index, tuple(group)))
                group, kept = [], 0
            group.append(tile)
            kept += tile.keep_end - tile.keep_start
        chunks.append(Chunk(index, tuple(group)))
    return chunks


def chunk_outputs(
    runner: InferenceModel,
    genome: PreparedGenome,
    chunk: Chunk,
    region: Region,
    tiling: Tiling,
    outputs: BaseOutputs,
    channels: int,
    strands: tuple[str, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per-base outputs (n, channels) of the chunk's range in genomic order, and which bases are real (not N).

    `strands`: the strands to read the range on (default: the chunk's own); with two, the mean of their outputs, and
    a base is real when it is on both.
    """
    start, end = chunk.start, chunk.end
    strands = strands or (chunk.tiles[0].strand,)
    total, real = np.zeros((end - start, channels), dtype=np.float32), np.ones(end - start, dtype=bool)
    for strand in strands:
        tiles = chunk.tiles if strand == chunk.tiles[0].strand else [
            t for t in _tiles(tiling, genome, region, strand) if t.keep_start < end and t.keep_end > start
        ]
        mask = np.zeros(end - start, dtype=bool)
        for tile, kept, kept_real in run_tiles(runner, genome, tiles, outputs, channels):
            a, b = max(tile.keep_start, start), min(tile.keep_end, end)
            total[a - start : b - start] += kept[a - tile.keep_start : b - tile.keep_start]
            mask[a - start : b - start] = kept_real[a - tile.keep_start : b - tile.keep_start]
        real &= mask
    return total / len(strands), real


@lru_cache(maxsize=2)
def _tiles(tiling: Tiling, genome: PreparedGenome, region: Region, strand: str) -> tuple[Tile, ...]:
    """The other strand's tiles of the region being worked on, made once rather than once per chunk."""
    return tuple(tiling.tiles(genome, region, strand))
