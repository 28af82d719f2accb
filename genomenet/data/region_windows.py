"""The fixed-length window a classifier reads for one BED region, as token ids on the region's strand.

`centered`: `length` bases centred on the region's midpoint (flank ignored: the window is the context).
`region`: the region plus `flank` bases on each side; cropped about its centre when longer than `length`, padded
(pad tokens after the sequence, masked out of attention and pooling) when shorter, widened about its centre to
`min_length` (k) bases when shorter than one k-mer. Bases past a chromosome's end read
as N. A minus-strand region is read as the reverse complement (5'->3' on its strand), so the classifier sees what the
transcript sees.

Frames: non-overlapping k-mer tokens read a window in one of k frames, and a single inserted base re-spells every
token after it; two copies of a locus one indel apart look unrelated to the model. With `frames="all"` each window is
also read shifted by 1 .. k-1 bases (k rows of tokens), and the classifier averages its pooled vectors over them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Interval, Region
from genomenet.data.tokenizers import N_CODE, KmerTokenizer, reverse_complement_packed

WindowMode = Literal["centered", "region"]
Frames = Literal["one", "all"]


@dataclass(frozen=True)
class WindowSpec:
    """What a classifier reads around each region."""

    length: int
    """Bases per window (tokens = length / k)."""
    mode: WindowMode = "centered"
    flank: int = 0
    """Bases added on each side of the region (region mode)."""
    min_length: int = 1
    """Fewest bases a region-mode window reads: the tokenizer's k, so a region (with its flanks) shorter than one
    k-mer still gives a token, widened about its centre."""
    frames: Frames = "one"
    """one (the window as placed) or all (also shifted by 1 .. k-1 bases: every k-mer reading frame)."""

    def num_frames(self, kmer_size: int) -> int:
        """Rows of tokens per window: k when every frame is read, else 1."""
        return kmer_size if self.frames == "all" else 1

    def interval(self, region: Region) -> Interval:
        """The forward-strand bases the window reads (may reach past the chromosome's ends)."""
        if self.mode == "region":
            start, end = region.start - self.flank, region.end + self.flank
            if end - start < self.min_length:
                start = (start + end) // 2 - self.min_length // 2
                return Interval(region.chrom, start, start + self.min_length)
            if end - start <= self.length:
                return Interval(region.chrom, start, end)
            middle = (start + end) // 2
        else:
            middle = (region.start + region.end) // 2
        start = middle - self.length // 2
        return Interval(region.chrom, start, start + self.length)


def window_bases(genome: PreparedGenome, window: Interval, strand: str) -> np.ndarray:
    """Packed bases of the window (N beyond the chromosome), reverse complemented for strand '-'."""
    length = genome.chromosome(window.chrom).length
    inside = Interval(window.chrom, max(window.start, 0), min(window.end, length))
    packed = np.full(window.length, N_CODE, dtype=np.uint8)
    if inside.start < inside.end:
        packed[inside.start - window.start:inside.end - window.start] = genome.window(*_args(inside))
    return reverse_complement_packed(packed) if strand == "-" else packed


def region_tokens(genome: PreparedGenome, region: Region, spec: WindowSpec, tokenizer: KmerTokenizer,
                  offset: int = 0) -> np.ndarray:
    """Token ids of a region's window (moved `offset` bases along the forward strand), right-padded with pad_id to
    the tokens of `spec.length` bases."""
    window = spec.interval(region)
    window = Interval(window.chrom, window.start + offset, window.end + offset)
    ids = tokenizer.encode_packed(window_bases(genome, window, region.reading_strand)).astype(np.int64)
    out = np.full(tokenizer.num_tokens(spec.length), tokenizer.pad_id, dtype=np.int64)
    out[:len(ids)] = ids
    return out


def region_frames(genome: PreparedGenome, region: Region, spec: WindowSpec, tokenizer: KmerTokenizer) -> np.ndarray:
    """Token ids of a region's window: (tokens,) when one frame is read, (k, tokens) when all are (row f: the window
    moved f bases along the forward strand)."""
    frames = spec.num_frames(tokenizer.k)
    if frames == 1:
        return region_tokens(genome, region, spec, tokenizer)
    return np.stack([region_tokens(genome, region, spec, tokenizer, offset) for offset in range(frames)])


def region_span(region: Region, spec: WindowSpec, tokenizer: KmerTokenizer, offset: int = 0) -> tuple[int, int]:
    """[first, end) of the window's tokens (on the region's reading strand) that hold the region's bases: what a
    classifier pooling over the region reads. A region wider than the window spans the whole window. `offset`: the
    window moved that many bases along the forward strand, as `region_tokens` reads it."""
    window = spec.interval(region)
    window = Interval(window.chrom, window.start + offset, window.end + offset)
    start, end = max(region.start, window.start) - window.start, min(region.end, window.end) - window.start
    if region.reading_strand == "-":
        start, end = window.length - end, window.length - start
    n_tokens = tokenizer.num_tokens(window.length)
    first = min(int(tokenizer.token_index(start)), n_tokens - 1)
    return first, max(min(int(tokenizer.token_index(max(end - 1, start))) + 1, n_tokens), first + 1)


def region_frame_spans(region: Region, spec: WindowSpec, tokenizer: KmerTokenizer) -> np.ndarray:
    """The region's token span in each frame `region_frames` reads: (2,) for one frame, (k, 2) for all."""
    frames = spec.num_frames(tokenizer.k)
    if frames == 1:
        return np.array(region_span(region, spec, tokenizer), dtype=np.int64)
    return np.array([region_span(region, spec, tokenizer, offset) for offset in range(frames)], dtype=np.int64)


def n_fraction(genome: PreparedGenome, window: Interval) -> float:
    """Share of the window's bases that are N (or past the chromosome's ends)."""
    length = genome.chromosome(window.chrom).length
    start, end = max(window.start, 0), min(window.end, length)
    outside = window.length - max(end - start, 0)
    inside = int(genome.n_count(window.chrom, np.array([start]), end - start)[0]) if end > start else 0
    return (outside + inside) / window.length


def _args(iv: Interval) -> tuple[str, int, int]:
    return iv.chrom, iv.start, iv.end
