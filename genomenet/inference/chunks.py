"""Chunks of work: consecutive tiles of one region, the unit that is computed, saved as a part and resumed.

A chunk's tiles are read on the region's strand; their kept bases form one genomic range. Reading the same range on
the other strand (reverse-complement averaging, tracks of the minus strand) runs that strand's tiles that keep bases
in it. Chunks name their tiles by index, so planning a genome holds no list of its tiles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Region
from genomenet.errors import ConfigError, InputFileError
from genomenet.inference.runner import BaseOutputs, InferenceModel, run_tiles
from genomenet.inference.tiling import RegionTiles, Tile, tile_region


@dataclass(frozen=True)
class Piece:
    """Tiles `first` to `stop` (exclusive) of region number `region` on `strand`; they keep genomic [start, end)."""

    region: int
    strand: str
    first: int
    stop: int
    start: int
    end: int


@dataclass(frozen=True)
class Chunk:
    """Pieces of consecutive regions, in order: a long region is cut into several chunks, short ones share one (so
    their windows are batched together)."""

    pieces: tuple[Piece, ...]

    @property
    def bases(self) -> int:
        return sum(p.end - p.start for p in self.pieces)


@dataclass(frozen=True)
class Tiling:
    """How a command cuts regions into windows: bases per window, least context per base, the model's kind."""

    window: int
    context: int
    causal: bool
    k: int
    flank: int = 0
    """Bases read on each side of a region as context only."""

    def tiles(self, genome: PreparedGenome, region: Region, strand: str) -> RegionTiles:
        try:
            return tile_region(region.chrom, region.start, region.end, strand, genome.lengths[region.chrom],
                               self.window, self.context, self.causal, self.k, self.flank)
        except ValueError as err:
            raise InputFileError(f"region {region.chrom}:{region.start}-{region.end}: {err}") from None


def resolve_tiling(runner: InferenceModel, window: int, context: int, flank: int) -> Tiling:
    """The tiling options imply: window 0 is the model's training window, context -1 a quarter of it (causal) or an
    eighth (masked), rounded down to whole tokens. A one-line ConfigError for what cannot work."""
    k = runner.k
    window = window or runner.default_window()
    context = context if context >= 0 else (window // 4 if runner.causal else window // 8)
    context -= context % k
    if window < k or window % k:
        raise ConfigError(f"--window {window} must be a positive multiple of the model's k-mer size {k}")
    if window - context * (1 if runner.causal else 2) < k:
        raise ConfigError(f"--context {context} leaves no room in a --window of {window} bases")
    if flank < 0:
        raise ConfigError(f"--flank {flank} must be >= 0")
    return Tiling(window, context, runner.causal, k, flank)


def plan_chunks(genome: PreparedGenome, regions: list[Region], tiling: Tiling, max_bases: int) -> list[Chunk]:
    """Regions' tiles (on each region's reading strand, in order) in chunks of max_bases // window tiles (at least
    one). Depends only on the inputs and options, so a rerun plans the same chunks; holds no tile lists."""
    per_chunk = max(1, max_bases // tiling.window)
    chunks, pieces, filled = [], [], 0
    for index, region in enumerate(regions):
        tiles = tiling.tiles(genome, region, region.reading_strand)
        needed = tiles.covering(region.start, region.end)  # all of them, unless flanks are read
        first = needed.start
        while first < needed.stop:
            stop = min(needed.stop, first + per_chunk - filled)
            a, b = tiles[first], tiles[stop - 1]
            start, end = min(a.keep_start, b.keep_start), max(a.keep_end, b.keep_end)
            pieces.append(Piece(index, region.reading_strand, first, stop, start, end))
            filled, first = filled + stop - first, stop
            if filled == per_chunk:
                chunks.append(Chunk(tuple(pieces)))
                pieces, filled = [], 0
    if pieces:
        chunks.append(Chunk(tuple(pieces)))
    return chunks


def chunk_outputs(
    runner: InferenceModel,
    genome: PreparedGenome,
    chunk: Chunk,
    regions: list[Region],
    tiling: Tiling,
    outputs: BaseOutputs,
    channels: int,
    strands: Callable[[Piece], tuple[str, ...]] | None = None,
) -> list[tuple[Piece, np.ndarray, np.ndarray]]:
    """Per piece: its per-base outputs (n, channels) in genomic order, and which bases are real (not N).

    `strands(piece)`: the strands to read it on (default: its own); with two, the mean of their outputs, and a base
    is real when it is on both. All the chunk's windows are batched together, shortest first.
    """
    reads = [strands(p) if strands else (p.strand,) for p in chunk.pieces]
    jobs = [(i, strand, tile) for i, p in enumerate(chunk.pieces) for strand in reads[i]
            for tile in _piece_tiles(genome, p, regions[p.region], tiling, strand)]
    jobs.sort(key=lambda job: job[2].length)  # stable: the same batches on every run
    totals = [np.zeros((p.end - p.start, channels), dtype=np.float32) for p in chunk.pieces]
    masks = {(i, s): np.zeros(p.end - p.start, dtype=bool) for i, p in enumerate(chunk.pieces) for s in reads[i]}
    for (i, strand, _), (tile, kept, kept_real) in zip(jobs, run_tiles(runner, genome, [j[2] for j in jobs],
                                                                      outputs, channels)):
        p = chunk.pieces[i]
        a, b = max(tile.keep_start, p.start), min(tile.keep_end, p.end)
        totals[i][a - p.start : b - p.start] += kept[a - tile.keep_start : b - tile.keep_start]
        masks[i, strand][a - p.start : b - p.start] = kept_real[a - tile.keep_start : b - tile.keep_start]
    genome.release()  # the genome's pages read for this chunk leave the resident set
    return [(p, totals[i] / len(reads[i]), np.logical_and.reduce([masks[i, s] for s in reads[i]]))
            for i, p in enumerate(chunk.pieces)]


def _piece_tiles(genome: PreparedGenome, piece: Piece, region: Region, tiling: Tiling, strand: str) -> list[Tile]:
    """The piece's own tiles, or the other strand's tiles that keep bases of its range."""
    on_strand = tiling.tiles(genome, region, strand)
    indices = range(piece.first, piece.stop) if strand == piece.strand else on_strand.covering(piece.start, piece.end)
    return [on_strand[i] for i in indices]
