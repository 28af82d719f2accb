"""Tiling a region into model windows: kept bases partition the region, each with the promised context."""

from __future__ import annotations

import numpy as np
import pytest

from genomenet.inference.tiling import frame_layout, region_frame, tile_region


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("length,window,context", [(1000, 128, 32), (129, 128, 32), (50, 128, 32), (4096, 256, 64),
                                                   (777, 100, 0), (300, 100, 49)])
def test_kept_ranges_partition_the_frame_and_every_base_has_its_context(causal, length, window, context) -> None:
    if not causal and window - 2 * context <= 0:
        pytest.skip("no room")
    layout = frame_layout(length, window, context, causal)
    kept = np.zeros(length, dtype=int)
    for ws, we, ks, ke in layout:
        assert 0 <= ws <= ks < ke <= we <= length and we - ws == min(window, length)
        kept[ks:ke] += 1
        for p in range(ks, ke):
            assert p - ws >= min(context, p)                          # left context, or all there is
            if not causal:
                assert we - 1 - p >= min(context, length - 1 - p)     # right context, or all there is
    assert (kept == 1).all()


def test_consecutive_windows_overlap_by_the_context_only() -> None:
    layout = frame_layout(10_000, 1000, 250, causal=True)
    starts = [ws for ws, *_ in layout]
    assert np.diff(starts)[:-1].tolist() == [750] * (len(starts) - 2)   # the last one is aligned to the end
    assert layout[-1][1] == 10_000


def test_region_frame_rounds_to_whole_kmers_and_stays_on_the_chromosome() -> None:
    frame = region_frame("c", 10, 21, "+", chrom_length=100, k=3)        # 11 bases -> 12
    assert (frame.origin, frame.length) == (10, 12)
    frame = region_frame("c", 90, 100, "+", chrom_length=100, k=3)       # cannot grow past the end: grows left
    assert frame.genomic(0, frame.length) == (88, 100)
    frame = region_frame("c", 0, 10, "-", chrom_length=100, k=3)         # minus strand reads from the end
    assert frame.genomic(0, frame.length) == (0, 12) and frame.origin == 12


@pytest.mark.parametrize("strand", ["+", "-"])
@pytest.mark.parametrize("k", [1, 3])
def test_tiles_of_a_region_cover_it_once_in_reading_order(strand: str, k: int) -> None:
    tiles = tile_region("c", 1003, 2500, strand, 5000, window=120, context=30, causal=True, k=k)
    covered = np.zeros(5000, dtype=int)
    for t in tiles:
        assert t.strand == strand and (t.end - t.start) % k == 0
        covered[t.keep_start : t.keep_end] += 1
        # reading direction: a '-' tile's context lies to the right of what it keeps
        if strand == "+":
            assert t.keep_start - t.start >= 30 or t.start == tiles[0].start
        else:
            assert t.end - t.keep_end >= 30 or t.end == tiles[0].end
    assert covered[1003:2500].tolist() == [1] * 1497 and covered.sum() == 1497
    keeps = [t.keep_start for t in tiles]
    assert keeps == sorted(keeps, reverse=strand == "-")

