"""Tiling a region into model windows: kept bases partition the region, each with the promised context."""

from __future__ import annotations

import numpy as np
import pytest

from genomenet.inference.tiling import Layout, frame_layout, region_frame, tile_region


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



def reference_layout(length: int, window: int, context: int, causal: bool) -> list[tuple[int, int, int, int]]:
    """The windows walked one by one: each starts `context` before the first base not yet kept."""
    if length <= window:
        return [(0, length, 0, length)]
    right, kept, out = (0 if causal else context), 0, []
    while kept < length:
        start = max(0, kept - context)
        if start + window >= length:
            return out + [(length - window, length, kept, length)]
        out.append((start, start + window, kept, start + window - right))
        kept = start + window - right
    return out


def test_layout_by_index_equals_walking_the_windows_and_finds_the_window_that_keeps_a_base() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        window, causal = int(rng.integers(2, 300)), bool(rng.integers(2))
        context = int(rng.integers(0, window if causal else (window + 1) // 2))
        length = int(rng.integers(1, 5000))
        layout = Layout(length, window, context, causal)
        assert list(layout) == reference_layout(length, window, context, causal)
        for position in rng.integers(0, length, 5):
            _, _, ks, ke = layout[layout.index(int(position))]
            assert ks <= position < ke


@pytest.mark.parametrize("strand", ["+", "-"])
def test_covering_names_exactly_the_tiles_that_keep_bases_of_a_range(strand: str) -> None:
    tiles = tile_region("c", 100, 9000, strand, 10_000, window=256, context=64, causal=False, k=2)
    for start, end in [(100, 101), (1000, 1500), (8999, 9000), (100, 9000), (4000, 4001)]:
        want = [i for i, t in enumerate(tiles) if t.keep_start < end and t.keep_end > start]
        assert list(tiles.covering(start, end)) == want
