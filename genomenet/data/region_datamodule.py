"""`RegionDataModule`: a FASTA and a labelled BED, split without leaks, served as (token window, target) batches.

A batch is a dict: `input_ids` LongTensor (b, n) (pad_id after a short region; (b, k, n) outside training when
every k-mer frame is read, `frames: all`), `target` FloatTensor (b, 1) or
(b, classes), `region` LongTensor (b, 2) (the [first, end) tokens that hold the region's bases, for pooling over the
region), `index` LongTensor (b) (row of the split's table). Every window is tokenized once, at setup: a labelled
BED is thousands of regions, not a genome.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from genomenet.data.cache import PreparedGenome, prepare
from genomenet.data.intervals import Interval, Region, read_bed_regions
from genomenet.data.labels import LabelSet, TaskKind, infer_labels, label_names
from genomenet.data.region_windows import (
    Frames,
    WindowMode,
    WindowSpec,
    n_fraction,
    region_frame_spans,
    region_frames,
)
from genomenet.data.splits import (
    SPLITS,
    Block,
    SplitConfig,
    SplitLoaders,
    blocks_by_chromosome,
    split_blocks,
    split_of,
    write_blocks_bed,
)
from genomenet.data.tokenizers import KmerTokenizer, make_tokenizer
from genomenet.errors import ConfigError, InputFileError


@dataclass
class LabelledWindows:
    """The regions of one split, their token windows and targets."""

    regions: list[Region]
    windows: list[Interval]
    tokens: np.ndarray   # (regions, tokens) or, every frame read, (regions, k, tokens) int64
    targets: np.ndarray  # (regions, 1 | classes) float32
    spans: np.ndarray    # (regions, [k,] 2) int64: [first, end) tokens of the region in its row of `tokens`


class WindowDataset(Dataset):
    """Windows of one split; with `shift_tokens` > 0 the stored rows are that many tokens wider on each side and
    each draw crops a window at a random offset (training augmentation), otherwise the centred one. Windows stored
    in every k-mer frame give all of them (the model averages over them), or one at random when drawn at random with
    `one_frame` (training at the cost of one frame)."""

    def __init__(self, data: LabelledWindows, shift_tokens: int = 0, random: bool = False,
                 order: np.ndarray | None = None, one_frame: bool = True) -> None:
        self.data, self.shift, self.random, self.order = data, shift_tokens, random, order
        self.one_frame = one_frame

    def __len__(self) -> int:
        return len(self.data.regions)

    def __getitem__(self, j: int) -> dict:
        i = int(self.order[j]) if self.order is not None else j
        row, span = self.data.tokens[i], self.data.spans[i]
        if row.ndim == 2 and self.random and self.one_frame:
            frame = np.random.randint(len(row))
            row, span = row[frame], span[frame]
        if self.shift:
            offset = int(np.random.randint(0, 2 * self.shift + 1)) if self.random else self.shift
            row = row[..., offset:row.shape[-1] - 2 * self.shift + offset]
            span = crop_span(span, offset, row.shape[-1])
        return {"input_ids": torch.from_numpy(np.ascontiguousarray(row)),
                "target": torch.from_numpy(self.data.targets[i]), "region": torch.from_numpy(span), "index": i}


def interleaved_order(targets: np.ndarray, seed: int = 0) -> np.ndarray:
    """A seeded order of the rows that spreads every target pattern evenly (shuffled within each), so that any prefix
    of it is close to a stratified sample: what `trainer.limit_val_batches` reads of the validation split (a prefix in
    file order can hold one chromosome, species or class only)."""
    if len(targets) == 0:
        return np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    _, group = np.unique(targets.reshape(len(targets), -1), axis=0, return_inverse=True)
    group = np.ravel(group)
    position = np.empty(len(targets))
    for g in np.unique(group):
        members = rng.permutation(np.flatnonzero(group == g))
        position[members] = (np.arange(len(members)) + 0.5) / len(members)
    return np.argsort(position, kind="stable")


def crop_span(span: np.ndarray, offset: int, n_tokens: int) -> np.ndarray:
    """Token spans (..., 2) moved into a row cropped at `offset` to `n_tokens` tokens (at least one token kept)."""
    span = np.asarray(span, dtype=np.int64)
    first = np.clip(span[..., 0] - offset, 0, n_tokens - 1)
    return np.stack([first, np.maximum(np.minimum(span[..., 1] - offset, n_tokens), first + 1)], -1)


class RegionDataModule(SplitLoaders, L.LightningDataModule):
    """Labelled regions of a genome for fine-tuning a classifier; the split is by chromosome or genomic block."""

    def __init__(
        self,
        fasta: str,
        regions: str,
        context_length: int = 1000,
        mode: WindowMode = "centered",
        flank: int = 0,
        kmer_size: int = 1,
        task: TaskKind | Literal["auto"] = "auto",
        split: SplitConfig = SplitConfig(),  # noqa: B008 - read-only default
        max_n_fraction: float = 0.1,
        shift: int = 0,
        frames: Frames = "one",
        train_frames: Literal["random", "all"] = "random",
        split_context: int | None = None,
        batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | None = None,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            fasta: genome FASTA (plain, gzip or bgzip); prepared into the cache on first use.
            regions: BED of labelled regions: column 4 the label (`a,b` for several: multi-label), column 6 the
                strand ('-' reads the reverse complement).
            context_length: bases per window the classifier reads (tokens = bases / k).
            mode: `centered` (context_length bases about each region's midpoint) or `region` (the region plus
                `flank` on each side, cropped about its centre or padded to context_length).
            flank: bases added on each side of the region (region mode).
            kmer_size: bases per token; must match the warm-start model's.
            task: binary, multiclass, multilabel, or auto (from the labels).
            split: train / val / test by chromosome or by genomic blocks; windows touching two splits are dropped.
            max_n_fraction: drop windows with a larger share of N (or bases past a chromosome's end).
            shift: training augmentation (centered mode): each time a training window is drawn it moves by a random
                whole number of tokens within +-shift bases; validation and test windows stay centred.
            frames: one (each window tokenized as placed) or all (k-mer tokens: also the window moved 1 .. k-1
                bases, so every reading frame is read; the model averages its pooled vectors over them, a single
                indel no longer re-spelling a window's tokens). Validation, test, the linear probe and
                `genomenet classify` read all k (k times the compute).
            train_frames: with frames all, what a training step reads: random (one frame per window, drawn each
                time: the cost of one frame) or all (every frame, as evaluation reads them: k times the cost).
            split_context: bases about each region that decide its split (default: the window it reads); set it to
                the longest window of a comparison across window lengths, so every length trains and tests on the
                same regions.
            batch_size: windows per batch.
            num_workers: DataLoader workers.
            cache_dir: prepared-genome cache (default $GENOMENET_CACHE or ~/.cache/genomenet).
            sequence_parallel_size: must be 1: a classifier window fits one device.
        """
        super().__init__()
        if sequence_parallel_size != 1:
            raise ConfigError("region fine-tuning reads one window per device: data.sequence_parallel_size must be 1")
        if context_length < kmer_size or batch_size < 1 or flank < 0 or not 0 <= max_n_fraction <= 1:
            raise ConfigError(f"data: context_length={context_length} (>= k), batch_size={batch_size} (>= 1), "
                              f"flank={flank} (>= 0) and max_n_fraction={max_n_fraction} (in [0, 1]) must hold")
        self.fasta, self.regions_path, self.cache_dir = fasta, regions, cache_dir
        if shift and mode != "centered" or shift < 0:
            raise ConfigError(f"data.shift={shift}: a shift (>= 0) needs data.mode centered")
        if frames not in ("one", "all") or train_frames not in ("random", "all"):
            raise ConfigError(f"data.frames={frames!r} must be one or all, data.train_frames={train_frames!r} "
                              "random or all")
        self.train_frames = train_frames
        self.spec = WindowSpec(context_length, mode, flank, min_length=kmer_size, frames=frames)
        self.shift_tokens = shift // kmer_size
        self.read_spec = replace(self.spec, length=context_length + 2 * self.shift_tokens * kmer_size)
        self.context_length, self.kmer_size, self.sequence_parallel_size = context_length, kmer_size, 1
        self.task, self.split_cfg, self.max_n = task, split, max_n_fraction
        self.split_spec = replace(self.spec, length=max(split_context or 0, self.read_spec.length))
        self.batch_size, self.num_workers = batch_size, num_workers
        self.tokenizer: KmerTokenizer = make_tokenizer(kmer_size)
        self.genome: PreparedGenome | None = None
        self.labels: LabelSet | None = None
        self.blocks: list[Block] = []
        self.splits: dict[str, LabelledWindows] = {}
        self.dropped: dict[str, int] = {}

    def prepare_data(self) -> None:
        prepare(self.fasta, self.cache_dir, progress=True)

    def setup(self, stage: str | None = None) -> None:
        """Read and check the BED, split it, tokenize every window (once)."""
        if self.splits:
            return
        if not Path(self.regions_path).exists() or Path(self.regions_path).is_dir():   # a pipe reads too
            what = "a folder, not a" if Path(self.regions_path).is_dir() else "no such"
            raise InputFileError(f"data.regions: {self.regions_path}: {what} BED file")
        self.genome = prepare(self.fasta, self.cache_dir)
        regions = read_bed_regions(self.regions_path, self.genome.lengths)
        self.labels = infer_labels(self.regions_path, regions, self.task)
        self.blocks = split_blocks(self.genome.lengths, self.split_cfg)
        assigned = self._assign(regions)
        self.splits = {s: self._windows(assigned[s]) for s in SPLITS}
        self._check_classes()

    def _assign(self, regions: list[Region]) -> dict[str, list[Region]]:
        """Regions by split; windows that touch two splits (or bases of no split), or hold too many N, are dropped
        (and counted)."""
        by_chrom = blocks_by_chromosome(self.blocks)
        assigned: dict[str, list[Region]] = {s: [] for s in SPLITS}
        self.dropped = {"not in one split": 0, "too many N": 0}
        for region in regions:
            split = split_of(self._split_reach(region), by_chrom)
            if split is None:
                self.dropped["not in one split"] += 1
            elif n_fraction(self.genome, self.spec.interval(region)) > self.max_n:
                self.dropped["too many N"] += 1
            else:
                assigned[split].append(region)
        return assigned

    def _split_reach(self, region: Region) -> Interval:
        """The bases that decide a region's split: its split-context window and every frame of its read window."""
        context, read = self.split_spec.interval(region), self.read_spec.interval(region)
        reach = self.spec.num_frames(self.kmer_size) - 1  # bases the last frame reads past the window
        return Interval(region.chrom, min(context.start, read.start), max(context.end, read.end + reach))

    def _windows(self, regions: list[Region]) -> LabelledWindows:
        """Token rows of the read windows (the model's window plus the shift on each side)."""
        n_tokens = self.tokenizer.num_tokens(self.read_spec.length)
        frames = self.spec.num_frames(self.kmer_size)
        tokens = np.stack([region_frames(self.genome, r, self.read_spec, self.tokenizer) for r in regions]) \
            if regions \
            else np.zeros((0, frames, n_tokens) if frames > 1 else (0, n_tokens), dtype=np.int64)
        targets = np.stack([self.labels.target(r.name) for r in regions]) if regions \
            else np.zeros((0, self.labels.num_outputs if self.labels.kind != "multiclass" else 1), np.float32)
        spans = np.array([region_frame_spans(r, self.read_spec, self.tokenizer) for r in regions], dtype=np.int64)
        return LabelledWindows(regions, [self.spec.interval(r) for r in regions], tokens, targets,
                               spans.reshape(len(regions), *((frames,) if frames > 1 else ()), 2))

    def _check_classes(self) -> None:
        """Every class needs a training and a test example, or the held-out figures mean nothing; validation must
        not be empty (it picks the best epoch and the baselines' k: the test split never does)."""
        if not self.splits["val"].regions:
            raise ConfigError(f"{self.regions_path}: the split leaves no validation region; set data.split."
                              "val_fraction > 0 (block mode) or data.split.val_chromosomes (chromosome mode)")
        for split in ("train", "test"):
            seen = {c for r in self.splits[split].regions for c in label_names(r.name)}
            missing = [c for c in self.labels.classes if c not in seen]
            if missing:
                raise ConfigError(f"{self.regions_path}: the split leaves class {missing[0]!r} with no {split} "
                                  f"example ({len(self.splits[split].regions)} {split} regions); change data.split "
                                  "(block_size, fractions, seed or chromosomes)")

    def window_tokens(self, split: str) -> np.ndarray:
        """The centred model windows of a split (regions, tokens), or (regions, k, tokens) with every frame: what
        evaluation and the linear probe read."""
        tokens = self.splits[split].tokens
        return tokens[..., self.shift_tokens:tokens.shape[-1] - self.shift_tokens] if self.shift_tokens else tokens

    def window_spans(self, split: str) -> np.ndarray:
        """The regions' token spans (regions, [k,] 2) in the centred model windows of `window_tokens`."""
        return crop_span(self.splits[split].spans, self.shift_tokens, self.tokenizer.num_tokens(self.spec.length))

    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        """Training shuffled; validation in `interleaved_order` (so a limited validation pass reads every class);
        test in file order (predictions follow the split file)."""
        order = interleaved_order(self.splits[split].targets) if split == "val" else None
        data = WindowDataset(self.splits[split], self.shift_tokens, random=shuffle, order=order,
                             one_frame=self.train_frames == "random")
        return DataLoader(data, batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def predict_dataloader(self) -> DataLoader:
        return self.dataloader("test")

    def summary(self) -> str:
        counts = ", ".join(f"{s} {len(self.splits[s].regions)}" for s in SPLITS)
        dropped = ", ".join(f"{n} ({why})" for why, n in self.dropped.items() if n)
        return f"regions: {counts}" + (f"; dropped {dropped}" if dropped else "")

    def write_split(self, out_dir: str | Path) -> Path:
        """`split.tsv` (every kept region, its window and split) and `split_blocks.bed`, written atomically."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        path, tmp = out / "split.tsv", out / ".split.tsv.tmp"
        with open(tmp, "w", newline="") as handle:
            writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
            writer.writerow(["chrom", "start", "end", "label", "strand", "window_start", "window_end", "split"])
            for split in SPLITS:
                for r, w in zip(self.splits[split].regions, self.splits[split].windows, strict=True):
                    writer.writerow([r.chrom, r.start, r.end, r.name, r.strand, w.start, w.end, split])
        os.replace(tmp, path)
        write_blocks_bed(self.blocks, out / "split_blocks.bed")
        return path
