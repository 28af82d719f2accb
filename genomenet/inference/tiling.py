"""Tile a region into model windows with overlap, and stitch per-token outputs back to bases.

Every command that runs a trained model over a genome goes through here. A region is read 5' to 3' on one strand
as a *frame*: the region rounded up to whole tokens (k bases each). The frame is cut into windows of `window` bases
that overlap so that every base's output comes from a window where it has at least `context` bases of context:

- causal model: `context` bases to its left in the reading direction (what it can see);
- masked (bidirectional) model: `context` bases on each side.

Only bases within `context` of the frame's ends have less, because there is no more sequence. Each window *keeps*
the bases it is responsible for; the kept ranges partition the frame, so each base has exactly one output.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One model window on the genome: the model reads bases [start, end) of `chrom` on `strand` (reverse
    complemented for '-'), and provides the outputs of bases [keep_start, keep_end). Genomic 0-based coordinates."""

    chrom: str
    start: int
    end: int
    strand: str
    keep_start: int
    keep_end: int

    @property
    def length(self) -> int:
        return self.end - self.start


def frame_layout(length: int, window: int, context: int, causal: bool) -> list[tuple[int, int, int, int]]:
    """(window start, window end, keep start, keep end) in frame coordinates (0 = the frame's 5' end).

    Windows are `window` long (one shorter window when the frame is), start `window - context` apart for a causal
    model and `window - 2 * context` apart for a masked one; the last one ends at the frame's end.
    """
    if length <= window:
        return [(0, length, 0, length)]
    right = 0 if causal else context
    if window - right - context <= 0:
        raise ValueError(f"context {context} leaves no room in a window of {window} bases")
    tiles, kept = [], 0
    while kept < length:
        start = 0 if kept == 0 else kept - context
        if start + window >= length:  # the last window ends at the frame's end
            start = length - window
            tiles.append((start, length, kept, length))
            break
        tiles.append((start, start + window, kept, start + window - right))
        kept = start + window - right
    return tiles


@dataclass(frozen=True)
class Frame:
    """A region read 5' to 3' on one strand, rounded to whole k-mers: frame position o is genomic base
    `origin + o` on '+' and `origin - 1 - o` on '-' (origin is the frame's 5' end; exclusive on '-')."""

    chrom: str
    strand: str
    origin: int
    length: int

    def genomic(self, start: int, end: int) -> tuple[int, int]:
        """Genomic [start, end) of frame positions [start, end)."""
        if self.strand == "+":
            return self.origin + start, self.origin + end
        return self.origin - end, self.origin - start


def region_frame(chrom: str, start: int, end: int, strand: str, chrom_length: int, k: int) -> Frame:
    """The frame of region [start, end): the region grown by up to k - 1 bases at its 3' end (or its 5' end, at a
    chromosome's edge) so that whole tokens cover it. A chromosome shorter than the rounded region loses the tail."""
    length = -(-(end - start) // k) * k
    while length > chrom_length:
        length -= k
    if length < k:
        raise ValueError(f"{chrom}:{start}-{end}: shorter than one {k}-mer token")
    if strand == "+":
        origin = start if start + length <= chrom_length else end - length
        return Frame(chrom, "+", max(origin, 0), length)
    origin = end if end - length >= 0 else start + length
    return Frame(chrom, "-", min(origin, chrom_length), length)


def tile_region(
    chrom: str,
    start: int,
    end: int,
    strand: str,
    chrom_length: int,
    window: int,
    context: int,
    causal: bool,
    k: int = 1,
) -> list[Tile]:
    """Model windows covering region [start, end) on `strand`, in reading order; see the module docstring."""
    if window % k or context % k:
        raise ValueError(f"window {window} and context {context} must be multiples of the k-mer size {k}")
    frame = region_frame(chrom, start, end, strand, chrom_length, k)
    tiles = []
    for ws, we, ks, ke in frame_layout(frame.length, window, context, causal):
        a, b = frame.genomic(ws, we)
        ka, kb = frame.genomic(ks, ke)
        ka, kb = max(ka, start), min(kb, end)  # the frame may reach past the region by part of a k-mer
        if ka < kb:
            tiles.append(Tile(chrom, a, b, strand, ka, kb))
    return tiles


def kept_bases(tile: Tile, per_base: np.ndarray) -> np.ndarray:
    """The rows of a tile's per-base output (genomic order) that it keeps."""
    return per_base[tile.keep_start - tile.start : tile.keep_end - tile.start]
