"""`SegmentDataModule`: a FASTA and its per-base labels (GFF3/GTF, or one BED track per class), split without leaks,
served as token windows with one label row per base.

The genome is cut into blocks (or whole chromosomes) of train / val / test (`genomenet.data.splits`); consecutive
blocks of one split form a run, and no window leaves its run. Training draws random windows inside the training runs,
each named by an integer key as in `genomenet.data.windows`: its place and strand follow from `(seed, key)`, so runs
are reproducible whatever the number of workers. Validation and test tile their runs: consecutive windows, the last
one moved back to end at the run's end, with the bases it shares with the window before it marked unknown, so every
base is scored once. A contig shorter than a window is read as one window padded past its end (pad tokens, unknown
bases). Windows with more than `max_n_fraction` N (or padding) are skipped.

A batch is a dict: `input_ids` LongTensor (b, n_tokens); `labels` FloatTensor (b, n_bases, classes), 0/1, rows
reversed for a reverse-complemented window (`BaseLabels.labels(..., reverse=True)`); `known` BoolTensor (b, n_bases),
False at N, past a contig's end and on bases another tile scores; `chrom` list[str]; `start` LongTensor (b,), the
window's genomic start; `reverse` BoolTensor (b,).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Dataset

from genomenet.data.annotation import BaseLabels, read_annotation, read_bed_tracks
from genomenet.data.cache import PreparedGenome, prepare
from genomenet.data.intervals import Interval
from genomenet.data.splits import (
    SPLITS,
    Block,
    SplitConfig,
    SplitLoaders,
    blocks_by_chromosome,
    split_blocks,
    split_of,
    write_split_beds,
)
from genomenet.data.tokenizers import CODE_MASK, N_CODE, KmerTokenizer, make_tokenizer, reverse_complement_packed
from genomenet.data.windows import MAX_DRAWS, WindowSampler
from genomenet.errors import ConfigError

FREQUENCY_CHUNK = 1 << 20


@dataclass(frozen=True)
class Tile:
    """A validation or test window: it reads [start, start + context_length) and scores the bases from
    `score_from` on (earlier ones belong to the tile before it)."""

    chrom: str
    start: int
    score_from: int


def split_runs(blocks: list[Block]) -> dict[str, list[Interval]]:
    """Maximal stretches of consecutive blocks of one split, per split (blocks come in genome order)."""
    runs: dict[str, list[Interval]] = {s: [] for s in SPLITS}
    for block in blocks:
        if block.split not in runs:  # bases of no split (bed mode)
            continue
        same = runs[block.split]
        if same and same[-1].chrom == block.chrom and same[-1].end == block.start:
            same[-1] = Interval(block.chrom, same[-1].start, block.end)
        else:
            same.append(Interval(block.chrom, block.start, block.end))
    return runs


def run_tiles(run: Interval, length: int, contig_length: int) -> list[Tile]:
    """Tiles covering a run once; none for a run shorter than a window unless it is a whole contig (padded)."""
    if run.length < length:
        whole_contig = run.start == 0 and run.end == contig_length
        return [Tile(run.chrom, 0, 0)] if whole_contig else []
    tiles = [Tile(run.chrom, s, s) for s in range(run.start, run.end - length + 1, length)]
    if run.length % length:
        tiles.append(Tile(run.chrom, run.end - length, tiles[-1].start + length))
    return tiles


def read_window(genome: PreparedGenome, labels: BaseLabels, tokenizer: KmerTokenizer, chrom: str, start: int,
                length: int, reverse: bool = False, score_from: int | None = None) -> dict:
    """One example: tokens, labels and known bases of [start, start + length), read on the reverse strand with
    `reverse` (reverse-complemented tokens, reversed label rows)."""
    inside = min(start + length, genome.chromosome(chrom).length) - start
    packed = np.full(length, N_CODE, dtype=np.uint8)
    packed[:inside] = genome.window(chrom, start, start + inside)
    known = labels.known(chrom, start, start + length) & ((packed & CODE_MASK) != N_CODE)
    known[: max(0, (score_from or start) - start)] = False
    past = np.arange(length) >= inside                                       # (L,) padding past the contig's end
    if reverse:
        packed, known, past = reverse_complement_packed(packed), known[::-1], past[::-1]
    ids = tokenizer.encode_packed(packed).astype(np.int64)                   # (n_tokens,)
    ids[~tokenizer.token_mask(~past)] = tokenizer.pad_id                     # tokens wholly past the end
    rows = labels.labels(chrom, start, start + length, reverse=reverse)      # (L, C) uint8
    return {"input_ids": torch.from_numpy(ids), "labels": torch.from_numpy(rows.astype(np.float32)),
            "known": torch.from_numpy(np.ascontiguousarray(known)), "chrom": chrom, "start": start,
            "reverse": bool(reverse)}


def n_fraction(genome: PreparedGenome, chrom: str, starts: np.ndarray, length: int) -> np.ndarray:
    """Share of N or padding past the contig's end in each window [s, s + length)."""
    starts = np.asarray(starts)
    past = np.maximum(starts + length - genome.chromosome(chrom).length, 0)
    return (genome.n_count(chrom, starts, length) + past) / length            # no N run lies past the end


class RandomWindows(Dataset):
    """Training windows: key -> a start drawn uniformly over every place a window fits in a run (a padded whole
    contig counts once), and a strand; both from `(seed, key)`."""

    tiles = None  # what WindowSampler reads: keys are not tiles

    def __init__(self, genome: PreparedGenome, labels: BaseLabels, tokenizer: KmerTokenizer, runs: list[Interval],
                 length: int, max_n_fraction: float, reverse_complement_prob: float, seed: int) -> None:
        self.genome, self.labels, self.tokenizer, self.length = genome, labels, tokenizer, length
        self.max_n, self.rc_prob, self.seed = max_n_fraction, reverse_complement_prob, seed
        sizes = {r.chrom: genome.chromosome(r.chrom).length for r in runs}
        self.runs = [r for r in runs if r.length >= length or (r.start == 0 and r.end == sizes[r.chrom])]
        self.places = np.array([max(r.length - length + 1, 1) for r in self.runs], dtype=np.float64)

    def __len__(self) -> int:
        return int(self.places.sum())

    def locate(self, key: int) -> tuple[str, int, bool]:
        """(chrom, start, reverse) of a key."""
        rng = np.random.default_rng([self.seed, key, 1])
        for _ in range(MAX_DRAWS):
            run = self.runs[rng.choice(len(self.runs), p=self.places / self.places.sum())]
            start = run.start + int(rng.integers(0, max(run.length - self.length + 1, 1)))
            if n_fraction(self.genome, run.chrom, np.array([start]), self.length)[0] <= self.max_n:
                reverse = np.random.default_rng([self.seed, key, 2]).random() < self.rc_prob
                return run.chrom, start, bool(reverse)
        raise ConfigError(f"training windows: {MAX_DRAWS} random windows all had more than {self.max_n:.0%} N; "
                          "raise data.max_n_fraction")

    def __getitem__(self, key: int) -> dict:
        chrom, start, reverse = self.locate(int(key))
        return read_window(self.genome, self.labels, self.tokenizer, chrom, start, self.length, reverse)


class TiledWindows(Dataset):
    """Validation or test windows, in genome order, forward strand."""

    def __init__(self, genome: PreparedGenome, labels: BaseLabels, tokenizer: KmerTokenizer, tiles: list[Tile],
                 length: int) -> None:
        self.genome, self.labels, self.tokenizer, self.tiles, self.length = genome, labels, tokenizer, tiles, length

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> dict:
        t = self.tiles[i]
        return read_window(self.genome, self.labels, self.tokenizer, t.chrom, t.start, self.length, False, t.score_from)


class SegmentDataModule(SplitLoaders, L.LightningDataModule):
    """A genome and its per-base labels for training a segmenter; the split is by chromosome or genomic block."""

    def __init__(
        self,
        fasta: str,
        annotation: str | None = None,
        tracks: dict[str, str] | None = None,
        extra_types: list[str] | None = None,
        context_length: int = 4096,
        kmer_size: int = 1,
        split: SplitConfig = SplitConfig(block_size=100_000),  # noqa: B008 - read-only default
        batch_size: int = 8,
        samples_per_epoch: int = 2000,
        val_windows: int | None = 64,
        test_windows: int | None = 256,
        reverse_complement_prob: float = 0.5,
        max_n_fraction: float = 0.1,
        seed: int = 0,
        num_workers: int = 0,
        cache_dir: str | None = None,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            fasta: genome FASTA (plain, gzip or bgzip); prepared into the cache on first use.
            annotation: GFF3 or GTF (plain or gzip) whose genes, exons, CDS, UTRs, introns and splice sites become
                the classes (genomenet.data.annotation). Give this or `tracks`.
            tracks: one BED file per class, {class: path}; a base inside an interval has the class.
            extra_types: annotation feature types that become classes too (e.g. [tRNA, repeat_region]).
            context_length: bases per window (a multiple of kmer_size).
            kmer_size: bases per token; must match the warm-start model's.
            split: train / val / test by chromosome or genomic blocks; no window leaves the blocks of its split.
            batch_size: windows per batch.
            samples_per_epoch: random training windows per epoch.
            val_windows: validation tiles scored at each validation (evenly spaced over the split); None: all.
            test_windows: test tiles the held-out report scores (evenly spaced); None: all.
            reverse_complement_prob: chance that a training window is read on the reverse strand.
            max_n_fraction: skip windows with a larger share of N (or padding past a contig's end).
            seed: seed of the training windows (their place and strand).
            num_workers: DataLoader workers.
            cache_dir: prepared-genome cache (default $GENOMENET_CACHE or ~/.cache/genomenet).
            sequence_parallel_size: must be 1: a segmentation window fits one device.
        """
        super().__init__()
        check_arguments(annotation, tracks, context_length, kmer_size, batch_size, max_n_fraction,
                        sequence_parallel_size)
        self.fasta, self.annotation, self.tracks = fasta, annotation, dict(tracks or {})
        self.extra_types, self.cache_dir = list(extra_types or []), cache_dir
        self.context_length, self.kmer_size, self.sequence_parallel_size = context_length, kmer_size, 1
        self.split_cfg, self.batch_size, self.samples_per_epoch = split, batch_size, samples_per_epoch
        self.window_caps = {"val": val_windows, "test": test_windows}
        self.rc_prob, self.max_n, self.seed = reverse_complement_prob, max_n_fraction, seed
        self.num_workers = num_workers
        self.tokenizer: KmerTokenizer = make_tokenizer(kmer_size)
        self.genome: PreparedGenome | None = None
        self.labels: BaseLabels | None = None
        self.blocks: list[Block] = []
        self.runs: dict[str, list[Interval]] = {}
        self.tiles: dict[str, list[Tile]] = {}
        self.dropped: dict[str, int] = {}
        self._frequencies: np.ndarray | None = None

    def prepare_data(self) -> None:
        prepare(self.fasta, self.cache_dir, progress=True)

    def setup(self, stage: str | None = None) -> None:
        """Read the labels, split the genome, tile the held-out runs (once)."""
        if self.labels is not None:
            return
        self.genome = prepare(self.fasta, self.cache_dir)
        lengths = self.genome.lengths
        labels = (read_annotation(self.annotation, lengths, self.extra_types) if self.annotation
                  else read_bed_tracks(self.tracks, lengths))
        self.blocks = split_blocks(lengths, self.split_cfg)
        self.runs = split_runs(self.blocks)
        self.tiles = {s: self._tiles(s) for s in ("val", "test")}
        self.labels = labels
        self._check_splits()

    def _tiles(self, split: str) -> list[Tile]:
        """The held-out tiles of a split: inside its runs and no other split's blocks (split_of), few enough N, at
        most the cap (evenly spaced)."""
        by_chrom, length = blocks_by_chromosome(self.blocks), self.context_length
        runs = self.runs[split]
        tiles = [t for run in runs for t in run_tiles(run, length, self.genome.chromosome(run.chrom).length)
                 if split_of(Interval(t.chrom, t.start, t.start + length), by_chrom) == split]
        keep = [t for t in tiles if n_fraction(self.genome, t.chrom, np.array([t.start]), length)[0] <= self.max_n]
        self.dropped[f"{split} tiles with too many N"] = len(tiles) - len(keep)
        short = [r for r in runs if r.length < length and not (r.start == 0 and r.end == self.genome.lengths[r.chrom])]
        self.dropped[f"bp of {split} stretches shorter than a window"] = sum(r.length for r in short)
        cap = self.window_caps[split]
        if cap is not None and len(keep) > cap:
            keep = [keep[i] for i in np.unique(np.linspace(0, len(keep) - 1, cap).round().astype(int))]
        return keep

    def _check_splits(self) -> None:
        fix = ("change data.split (block_size, fractions or chromosomes) or lower data.context_length "
               f"({self.context_length})")
        if not self.tiles["val"]:
            raise ConfigError(f"{self.fasta}: the split leaves no validation window: set data.split.val_fraction > 0 "
                              f"(block mode) or data.split.val_chromosomes (chromosome mode), or {fix}")
        if not self.tiles["test"]:
            raise ConfigError(f"{self.fasta}: the split leaves no test window; {fix}")
        if not self.dataset("train", check=False).runs:
            raise ConfigError(f"{self.fasta}: no training stretch holds a whole window; {fix}")

    def dataset(self, split: str, check: bool = True) -> Dataset:
        if check:
            self.setup()
        if split == "train":
            return RandomWindows(self.genome, self.labels, self.tokenizer, self.runs["train"], self.context_length,
                                 self.max_n, self.rc_prob, self.seed)
        return TiledWindows(self.genome, self.labels, self.tokenizer, self.tiles[split], self.context_length)

    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        data = self.dataset(split)
        if split != "train":
            return DataLoader(data, batch_size=self.batch_size, num_workers=self.num_workers,
                              persistent_workers=self.num_workers > 0)
        rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_available() and dist.is_initialized() \
            else (0, 1)
        sampler = WindowSampler(data, self.samples_per_epoch, shuffle=True, seed=self.seed, num_replicas=world,
                                rank=rank)
        return DataLoader(data, batch_size=self.batch_size, sampler=sampler, num_workers=self.num_workers,
                          drop_last=True, persistent_workers=self.num_workers > 0)

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def train_frequencies(self) -> np.ndarray:
        """(C,) share of the known (non-N) training bases that have each class; what the loss's pos_weight uses."""
        if self._frequencies is None:
            self.setup()
            counts, total = np.zeros(len(self.labels.classes)), 0
            for run in self.runs["train"]:
                for lo in range(run.start, run.end, FREQUENCY_CHUNK):
                    hi = min(lo + FREQUENCY_CHUNK, run.end)
                    real = self.genome.bases(run.chrom, lo, hi) != N_CODE
                    counts += self.labels.labels(run.chrom, lo, hi)[real].sum(0)
                    total += int(real.sum())
            self._frequencies = counts / max(total, 1)
        return self._frequencies

    def summary(self) -> str:
        """Classes with their bases, the split's sizes and what was left out."""
        self.setup()
        sizes = {s: sum(r.length for r in self.runs[s]) for s in SPLITS}
        lines = [self.labels.summary(),
                 f"split by {self.split_cfg.by}" + (f" ({self.split_cfg.block_size:,} bp blocks)"
                                                    if self.split_cfg.by == "block" else "") + ": "
                 + ", ".join(f"{s} {sizes[s]:,} bp in {len(self.runs[s])} stretches" for s in SPLITS),
                 f"windows of {self.context_length:,} bp: {self.samples_per_epoch:,} random training windows per "
                 f"epoch (reverse strand p={self.rc_prob}), " + ", ".join(
                     f"{len(self.tiles[s])} {s} tiles" for s in ("val", "test"))]
        dropped = ", ".join(f"{n} {why}" for why, n in self.dropped.items() if n)
        return "\n".join(lines + ([f"left out: {dropped}"] if dropped else []))

    def write_split(self, out_dir: str | Path) -> Path:
        """`split.tsv` (every stretch of one split and the windows scored in it), `split_blocks.bed`, and `val.bed`
        / `test.bed` for a pre-training config's val_intervals / test_intervals (no backbone should have trained on
        the held-out sequence)."""
        self.setup()
        out = Path(out_dir)
        write_split_beds(self.blocks, out)
        path, tmp = out / "split.tsv", out / ".split.tsv.tmp"
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["chrom", "start", "end", "split", "windows_scored"])
            for s in SPLITS:
                for run in self.runs[s]:
                    count = "random" if s == "train" else sum(
                        t.chrom == run.chrom and run.start <= t.start < run.end for t in self.tiles[s])
                    writer.writerow([run.chrom, run.start, run.end, s, count])
        os.replace(tmp, path)
        return path


def check_arguments(annotation: str | None, tracks: dict | None, context_length: int, kmer_size: int,
                    batch_size: int, max_n_fraction: float, sequence_parallel_size: int) -> None:
    """One-line ConfigErrors for data settings that cannot work, before anything is read."""
    if annotation is None and not tracks:
        raise ConfigError("data: give data.annotation (a GFF3 or GTF) or data.tracks ({class: BED file})")
    if annotation is not None and tracks:
        raise ConfigError("data: give data.annotation or data.tracks, not both")
    if context_length < 1 or context_length % kmer_size:
        raise ConfigError(f"data.context_length={context_length} must be a positive multiple of "
                          f"data.kmer_size={kmer_size} (every base gets a label)")
    if batch_size < 1 or not 0 <= max_n_fraction <= 1:
        raise ConfigError(f"data: batch_size={batch_size} (>= 1) and max_n_fraction={max_n_fraction} (in [0, 1]) "
                          "must hold")
    if sequence_parallel_size != 1:
        raise ConfigError("segmentation reads one window per device: data.sequence_parallel_size must be 1")


