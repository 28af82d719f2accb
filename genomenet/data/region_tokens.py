"""Token ids of a genome region read a slice at a time, for consumers that stream over whole chromosomes (the Markov
baseline's counts): the region is never held as tokens at once."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Interval
from genomenet.data.tokenizers import KmerTokenizer


@dataclass(frozen=True)
class RegionTokens:
    """The token ids of `interval` under `tokenizer`: `len` and slicing (step 1) as a 1-D array's, each slice encoded
    from the prepared cache when it is taken. Slices equal the same slice of the whole region's tokens."""

    genome: PreparedGenome
    tokenizer: KmerTokenizer
    interval: Interval

    def __len__(self) -> int:
        return self.tokenizer.num_tokens(self.interval.end - self.interval.start)

    def __getitem__(self, index: slice) -> np.ndarray:
        if not isinstance(index, slice):
            raise TypeError(f"RegionTokens takes slices, not {type(index).__name__}")
        lo, hi, step = index.indices(len(self))
        if step != 1:
            raise ValueError("RegionTokens slices take step 1")
        if hi <= lo:
            return np.zeros(0, dtype=np.int64)
        k, stride, start = self.tokenizer.k, self.tokenizer.stride, self.interval.start
        bases = self.genome.window(self.interval.chrom, start + lo * stride, start + (hi - 1) * stride + k)
        return np.asarray(self.tokenizer.encode_packed(bases), dtype=np.int64)  # (hi - lo,)


def region_tokens(genome: PreparedGenome, tokenizer: KmerTokenizer, regions: list[Interval]) -> list[RegionTokens]:
    """Lazy token ids of each region."""
    return [RegionTokens(genome, tokenizer, Interval(r.chrom, r.start, r.end)) for r in regions]
