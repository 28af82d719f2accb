"""Chunks of work: consecutive tiles of one region, the unit that is computed, saved as a part and resumed.

A chunk's tiles are read on the region's strand; their kept bases form one genomic range. Reading the same range on
the other strand (reverse-complement averaging, tracks of the minus strand) runs that strand's tiles that keep bases
in it. Chunks name their tiles by index, so planning a genome holds no list of its tiles.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Region
from genomenet.errors import InputFileError
from genomenet.inference.runner import BaseOutputs, InferenceModel, run_tiles
from genomenet.inference.tiling import RegionTiles, tile_region


@dataclass(frozen=True)
class Chunk:
    """Tiles `first` to `stop` (exclusive) of region number `region` on `strand`; they keep genomic [start, end)."""

    region: int
    strand: str
    first: int
    stop: int
    start: int
    end: int


@dataclass(frozen=True)
class Tiling:
    """How a command cuts regions into windows: bases per window, least context per base, the model's kind."""

    window: int
    context: int
    causal: bool
    k: int

    def tiles(self, genome: PreparedGenome, region: Region, strand: str) -> RegionTiles:
        try:
            return tile_region(region.chrom, region.start, region.end, strand, genome.lengths[region.chrom],
                               self.window, self.context, self.causal, self.k)
        except ValueError as err:
            raise InputFileError(f"region {region.chrom}:{region.start}-{region.end}: {err}") from None


def plan_chunks(genome: PreparedGenome, regions: list[Region], tiling: Tiling, max_bases: int) -> list[Chunk]:
    """Each region's tiles (on its strand, in reading order) in groups of max_bases // window (at least one).
    Depends only on the inputs and options, so a rerun plans the same chunks; holds no tile lists."""
    per_chunk = max(1, max_bases // tiling.window)
    chunks = []
    for index, region in enumerate(regions):
        tiles = tiling.tiles(genome, region, region.strand)
        for first in range(0, len(tiles), per_chunk):
            stop = min(first + per_chunk, len(tiles))
            a, b = tiles[first], tiles[stop - 1]
            start, end = min(a.keep_start, b.keep_start), max(a.keep_end, b.keep_end)
            chunks.append(Chunk(index, region.strand, first, stop, start, end))
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
    total, real = np.zeros((end - start, channels), dtype=np.float32), np.ones(end - start, dtype=bool)
    for strand in strands or (chunk.strand,):
        on_strand = tiling.tiles(genome, region, strand)
        indices = range(chunk.first, chunk.stop) if strand == chunk.strand else on_strand.covering(start, end)
        tiles = [on_strand[i] for i in indices]
        mask = np.zeros(end - start, dtype=bool)
        for tile, kept, kept_real in run_tiles(runner, genome, tiles, outputs, channels):
            a, b = max(tile.keep_start, start), min(tile.keep_end, end)
            total[a - start : b - start] += kept[a - tile.keep_start : b - tile.keep_start]
            mask[a - start : b - start] = kept_real[a - tile.keep_start : b - tile.keep_start]
        real &= mask
    return total / len(strands or (chunk.strand,)), real
