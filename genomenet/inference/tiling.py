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

from collections.abc import Sequence
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


@dataclass(frozen=True)
class Layout(Sequence[tuple[int, int, int, int]]):
    """The windows of a frame, computed by index rather than listed, so a chromosome's plan takes no memory.

    Item i is (window start, window end, keep start, keep end) in frame coordinates (0 = the frame's 5' end).
    Windows are `window` long (one shorter window when the frame is), start `window - context` apart for a causal
    model and `window - 2 * context` apart for a masked one; the last one ends at the frame's end.
    """

    length: int
    window: int
    context: int
    causal: bool

    def __post_init__(self) -> None:
        if self.length > self.window and self.stride <= 0:
            raise ValueError(f"context {self.context} leaves no room in a window of {self.window} bases")

    @property
    def right(self) -> int:
        """Context a kept base needs on its right: none for a causal model."""
        return 0 if self.causal else self.context

    @property
    def stride(self) -> int:
        return self.window - self.right - self.context

    def __len__(self) -> int:
        if self.length <= self.window:
            return 1
        behind = self.length - self.window + self.context - (self.window - self.right)  # left to keep after window 0
        return 2 + max(0, -(-behind // self.stride))

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        n = len(self)
        i = i + n if i < 0 else i
        if not 0 <= i < n:
            raise IndexError(i)
        if n == 1:
            return (0, self.length, 0, self.length)
        if i == 0:
            return (0, self.window, 0, self.window - self.right)
        kept = self.window - self.right + (i - 1) * self.stride
        if i == n - 1:
            return (self.length - self.window, self.length, kept, self.length)
        start = kept - self.context
        return (start, start + self.window, kept, start + self.window - self.right)

    def index(self, position: int) -> int:  # type: ignore[override]
        """The window that keeps frame position `position`."""
        first_end = self.window - self.right
        i = 0 if position < first_end or len(self) == 1 else 1 + (position - first_end) // self.stride
        return min(i, len(self) - 1)


def frame_layout(length: int, window: int, context: int, causal: bool) -> list[tuple[int, int, int, int]]:
    """All windows of a frame as a list (see `Layout`)."""
    return list(Layout(length, window, context, causal))


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


@dataclass(frozen=True)
class RegionTiles(Sequence[Tile]):
    """The tiles of one region on one strand, in reading order, made on demand from the frame's layout."""

    start: int
    end: int
    frame: Frame
    layout: Layout

    def __len__(self) -> int:
        return len(self.layout)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        ws, we, ks, ke = self.layout[i]
        a, b = self.frame.genomic(ws, we)
        ka, kb = self.frame.genomic(ks, ke)
        # the frame may reach past the region by part of a k-mer: never by a whole kept range
        return Tile(self.frame.chrom, a, b, self.frame.strand, max(ka, self.start), min(kb, self.end))

    def covering(self, start: int, end: int) -> range:
        """Indices of the tiles that keep bases of genomic [start, end) (a part of the region)."""
        if self.frame.strand == "+":
            first, last = start - self.frame.origin, end - 1 - self.frame.origin
        else:
            first, last = self.frame.origin - end, self.frame.origin - 1 - start
        first, last = max(first, 0), min(last, self.frame.length - 1)
        return range(self.layout.index(first), self.layout.index(last) + 1)


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
    flank: int = 0,
) -> RegionTiles:
    """Model windows covering region [start, end) on `strand`, in reading order; see the module docstring. With
    `flank`, the model also reads up to that many bases on each side (context only: nothing there is kept), and
    tiles that would keep only flank bases are not among `covering(start, end)`."""
    if window % k or context % k:
        raise ValueError(f"window {window} and context {context} must be multiples of the k-mer size {k}")
    outer_start, outer_end = max(0, start - flank), min(chrom_length, end + flank)
    frame = region_frame(chrom, outer_start, outer_end, strand, chrom_length, k)
    return RegionTiles(start, end, frame, Layout(frame.length, window, context, causal))


def kept_bases(tile: Tile, per_base: np.ndarray) -> np.ndarray:
    """The rows of a tile's per-base output (genomic order) that it keeps."""
    return per_base[tile.keep_start - tile.start : tile.keep_end - tile.start]
