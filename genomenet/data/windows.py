"""Training windows: which `context_length` stretches of a prepared genome a split yields, and in what order.

A window is named by an integer key. `WindowSampler` (a `DistributedSampler`, so Lightning keeps it) deals keys to
ranks; `GenomeWindows[key]` turns a key into a window deterministically from `(seed, key)`: the same seed gives the
same windows whatever the number of workers, and each rank gets distinct keys.

- `sampling="tiled"`: consecutive non-overlapping windows of each region (key modulo the number of tiles).
- `sampling="random"`: a start drawn uniformly over every position where a whole window fits in a region.

Windows whose N fraction exceeds `max_n_fraction` are skipped (tiled) or redrawn (random), counted from the N runs
of the cache index without reading bases.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Interval, subtract
from genomenet.data.tokenizers import KmerTokenizer, reverse_complement_packed
from genomenet.errors import ConfigError

Sampling = Literal["random", "tiled"]
MAX_DRAWS = 100


class GenomeWindows(Dataset):
    """Windows of a split. Item `key` -> dict of `input_ids` (n,) int64, `soft_mask` (n,) bool, `chrom` str,
    `start` int (0-based genomic start of the whole window), `reverse` bool (reverse-complemented).

    With `sequence_parallel_size` P > 1, each item holds only tokens [j*n/P, (j+1)*n/P) of the window for
    `sequence_parallel_rank` j; all ranks of a sequence group must be given the same keys.
    """

    def __init__(
        self,
        genome: PreparedGenome,
        regions: list[Interval],
        context_length: int,
        tokenizer: KmerTokenizer,
        sampling: Sampling = "random",
        max_n_fraction: float = 0.1,
        reverse_complement_prob: float = 0.0,
        seed: int = 0,
        sequence_parallel_rank: int = 0,
        sequence_parallel_size: int = 1,
        name: str = "windows",
    ):
        self.genome, self.context_length, self.tokenizer = genome, context_length, tokenizer
        self.sampling, self.max_n = sampling, int(math.floor(max_n_fraction * context_length))
        self.rc_prob, self.seed, self.name = reverse_complement_prob, seed, name
        self.fasta = genome.source["path"]   # named in the errors below
        self.sp_rank, self.sp_size = sequence_parallel_rank, sequence_parallel_size
        self.num_tokens = tokenizer.num_tokens(context_length)
        self._check(sampling)
        self.regions = [r for r in regions if r.length >= context_length]
        if not self.regions:
            raise ConfigError(f"{self.fasta}: {name}: no region of the split holds a whole window of {context_length} "
                              "bases")
        self._weights = np.array([r.length - context_length + 1 for r in self.regions], dtype=np.float64)
        self._weights /= self._weights.sum()
        self.tiles = self._tiles() if sampling == "tiled" else None

    def _check(self, sampling: str) -> None:
        if sampling not in ("random", "tiled"):
            raise ConfigError(f"sampling must be 'random' or 'tiled', got {sampling!r}")
        if self.num_tokens == 0 or self.num_tokens % self.sp_size:
            raise ConfigError(
                f"context_length {self.context_length} gives {self.num_tokens} tokens with {self.tokenizer}; "
                f"it must be a positive multiple of sequence_parallel_size {self.sp_size}"
            )
        if not 0 <= self.sp_rank < self.sp_size:
            raise ConfigError(f"sequence_parallel_rank {self.sp_rank} not in 0..{self.sp_size - 1}")

    def _tiles(self) -> list[tuple[str, np.ndarray]]:
        """Per region, the starts of its non-overlapping windows with few enough N."""
        tiles = []
        for region in self.regions:
            starts = np.arange(region.start, region.end - self.context_length + 1, self.context_length)
            keep = self.genome.n_count(region.chrom, starts, self.context_length) <= self.max_n
            tiles.append((region.chrom, starts[keep]))
        self._tile_offsets = np.cumsum([0] + [len(s) for _, s in tiles])
        if self._tile_offsets[-1] == 0:
            raise ConfigError(f"{self.fasta}: {self.name}: every window has more than {self.max_n} N; raise "
                              "max_n_fraction")
        return tiles

    def __len__(self) -> int:
        """Tiles in the split (tiled); for random sampling the number of distinct starts."""
        if self.tiles is not None:
            return int(self._tile_offsets[-1])
        return int(sum(r.length - self.context_length + 1 for r in self.regions))

    def locate(self, key: int) -> tuple[str, int]:
        """The (chrom, start) a key names."""
        if self.tiles is not None:
            tile = key % len(self)
            region = int(np.searchsorted(self._tile_offsets, tile, side="right")) - 1
            chrom, starts = self.tiles[region]
            return chrom, int(starts[tile - self._tile_offsets[region]])
        return self._draw(np.random.default_rng([self.seed, key, 1]))

    def _draw(self, rng: np.random.Generator) -> tuple[str, int]:
        start = self._draw_in(rng, self.regions, self._weights)
        if start is None:  # mostly N: draw again in the stretches between N runs too long for any window
            stretches, weights = self._n_free_stretches()
            start = self._draw_in(rng, stretches, weights) if stretches else None
        if start is None:
            raise ConfigError(f"{self.fasta}: {self.name}: {MAX_DRAWS} random windows all had too many N; raise "
                              "max_n_fraction")
        return start

    def _draw_in(self, rng: np.random.Generator, regions: list[Interval], weights: np.ndarray
                 ) -> tuple[str, int] | None:
        for _ in range(MAX_DRAWS):
            region = regions[rng.choice(len(regions), p=weights)]
            start = region.start + int(rng.integers(0, region.length - self.context_length + 1))
            if self.genome.n_count(region.chrom, np.array([start]), self.context_length)[0] <= self.max_n:
                return region.chrom, start
        return None

    def _n_free_stretches(self) -> tuple[list[Interval], np.ndarray]:
        """The regions minus every N run longer than a window may hold, the parts that still hold a window, and
        their draw weights (one per start). Drawing there is uniform over those starts; windows that reach into such
        a run by at most the allowed N are left out, a small bias at run edges taken only when the first draws
        failed."""
        if not hasattr(self, "_stretches"):
            runs = [Interval(r.chrom, int(a), int(b)) for r in {r.chrom: r for r in self.regions}.values()
                    for a, b in self.genome.chromosome(r.chrom).n_runs if b - a > self.max_n]
            stretches = [s for s in subtract(self.regions, runs) if s.length >= self.context_length]
            weights = np.array([s.length - self.context_length + 1 for s in stretches], dtype=np.float64)
            self._stretches = (stretches, weights / weights.sum() if stretches else weights)
        return self._stretches

    def __getitem__(self, key: int) -> dict:
        chrom, start = self.locate(int(key))
        packed = self.genome.window(chrom, start, start + self.context_length)
        reverse = self.rc_prob > 0 and np.random.default_rng([self.seed, int(key), 2]).random() < self.rc_prob
        if reverse:
            packed = reverse_complement_packed(packed)
        ids = self.tokenizer.encode_packed(packed)
        mask = self.tokenizer.token_mask(packed >= 0x80)
        part = slice(self.sp_rank * len(ids) // self.sp_size, (self.sp_rank + 1) * len(ids) // self.sp_size)
        return {
            "input_ids": torch.from_numpy(ids[part].astype(np.int64)),
            "soft_mask": torch.from_numpy(np.ascontiguousarray(mask[part])),
            "chrom": chrom,
            "start": start,
            "reverse": bool(reverse),
        }


def collate_windows(samples: list[dict]) -> dict:
    """Batch: `input_ids` LongTensor (b, n), `soft_mask` BoolTensor (b, n), `chrom` list[str], `start`
    LongTensor (b,), `reverse` BoolTensor (b,)."""
    return {
        "input_ids": torch.stack([s["input_ids"] for s in samples]),
        "soft_mask": torch.stack([s["soft_mask"] for s in samples]),
        "chrom": [s["chrom"] for s in samples],
        "start": torch.tensor([s["start"] for s in samples], dtype=torch.long),
        "reverse": torch.tensor([s["reverse"] for s in samples], dtype=torch.bool),
    }


class WindowSampler(DistributedSampler):
    """Keys of one epoch for one data-parallel rank.

    Epoch e uses keys `e * period + i`: random windows are fresh each epoch, tiles are reshuffled (when `shuffle`).
    Rank r takes every `num_replicas`-th key from r. Training (`even`) pads the keys by repetition to a multiple of
    `num_replicas` (as `DistributedSampler` does): every rank runs the same number of steps, as DDP's gradient
    all-reduce needs. Evaluation (`even=False`) deals each key once, with at most one tile per key, so a metric
    summed over ranks counts every window once; ranks may get one key fewer. That is safe because evaluation runs no
    collective that spans data-parallel ranks inside a step: metrics are summed at the epoch's end, and the
    collectives of sequence parallelism stay inside a sequence group, whose ranks all get the same keys (keys are
    dealt by data-parallel rank). Lightning calls `set_epoch`; it does not replace this sampler.
    """

    def __init__(
        self,
        dataset: GenomeWindows,
        samples_per_epoch: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
        even: bool = True,
    ):
        if not 0 <= rank < num_replicas:
            raise ValueError(f"rank {rank} not in 0..{num_replicas - 1}")
        self.dataset, self.shuffle, self.seed = dataset, shuffle, seed
        self.num_replicas, self.rank, self.epoch, self.drop_last = num_replicas, rank, 0, False
        self.tiled = dataset.tiles is not None
        self.resume_at: tuple[int, int] | None = None  # (epoch, keys already trained on) when resuming mid-epoch
        self.epoch_size = samples_per_epoch or len(dataset)
        if not even and self.tiled:
            self.epoch_size = min(self.epoch_size, len(dataset))  # each tile once
        dealt = range(rank, self.epoch_size, num_replicas)  # this rank's keys without padding
        self.num_samples = math.ceil(self.epoch_size / num_replicas) if even else len(dealt)
        self.total_size = self.num_samples * num_replicas if even else self.epoch_size

    def epoch_keys(self) -> np.ndarray:
        """Every rank's keys of the current epoch, before dealing."""
        if not self.tiled:
            return self.epoch * self.epoch_size + np.arange(self.total_size) % self.epoch_size
        tiles = len(self.dataset)
        order = np.random.default_rng([self.seed, self.epoch]).permutation(tiles) if self.shuffle else np.arange(tiles)
        return self.epoch * tiles + order[np.arange(self.total_size) % self.epoch_size % tiles]

    def __iter__(self) -> Iterator[int]:
        skip = 0
        if self.resume_at is not None and self.resume_at[0] == self.epoch:
            skip = self.resume_at[1]
        self.resume_at = None
        return iter(self.epoch_keys()[self.rank :: self.num_replicas][skip:].tolist())

    def __len__(self) -> int:
        return self.num_samples
