"""Train / val / test splits of labelled regions that do not leak: by whole chromosome, or by genomic blocks.

A region's split is decided by the bases its model window reads (flanks included), never by a random draw of
windows: overlapping sequence cannot sit on both sides. In block mode every chromosome is cut into blocks of
`block_size` bases and, chromosome by chromosome, a seeded draw makes `test_fraction` of its blocks test and
`val_fraction` val (so every chromosome, e.g. every species, is represented in each split); a window that touches
blocks of two different splits is dropped and counted. Chromosomes with fewer blocks than one held-out share needs
(scaffolds) are pooled and drawn together instead. In bed mode the blocks are given: a BED whose name column says
train, val or test (e.g. blocks placed by orthology, so that a held-out locus is held out in every genome); bases it
does not list belong to no split, and a window that reads them is dropped.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from genomenet.data.intervals import Interval, read_bed_regions
from genomenet.errors import ConfigError, InputFileError

SPLITS = ("train", "val", "test")
NO_SPLIT = "none"
"""The split of bases a split BED does not list (bed mode): a window that reads them is dropped."""


@dataclass
class SplitConfig:
    """How labelled regions are split; written into the run's output (split.tsv, split_blocks.bed)."""

    by: Literal["block", "chromosome", "bed"] = "block"
    """block: blocks of every chromosome drawn into val / test; chromosome: the named chromosomes are held out;
    bed: the blocks listed in `blocks`."""
    block_size: int = 500_000
    """Bases per block (block mode)."""
    val_fraction: float = 0.1
    """Share of each chromosome's blocks that validate (block mode)."""
    test_fraction: float = 0.2
    """Share of each chromosome's blocks that test (block mode)."""
    val_chromosomes: list[str] = field(default_factory=list)
    """Chromosomes held out for validation (chromosome mode)."""
    test_chromosomes: list[str] = field(default_factory=list)
    """Chromosomes held out for testing (chromosome mode)."""
    seed: int = 0
    """Seed of the block draw."""
    blocks: str | None = None
    """BED of blocks whose 4th column is train, val or test (bed mode); unlisted bases are in no split."""

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ConfigError(f"data split.block_size={self.block_size} must be >= 1")
        val, test = self.val_fraction, self.test_fraction
        if not (0 <= val < 1 and 0 < test < 1 and val + test < 1):
            raise ConfigError(f"data split: val_fraction={self.val_fraction} and test_fraction={self.test_fraction} "
                              "must be in [0, 1) (test > 0) and leave some blocks for training")
        if self.by == "bed" and not self.blocks:
            raise ConfigError("data split.by=bed needs split.blocks, a BED whose 4th column is train, val or test")
        if self.by == "chromosome" and not self.test_chromosomes:
            raise ConfigError("data split.by=chromosome needs split.test_chromosomes")
        both = set(self.val_chromosomes) & set(self.test_chromosomes)
        if both:
            raise ConfigError(f"data split: {sorted(both)} named for both val and test")


@dataclass(frozen=True)
class Block:
    """A stretch of one chromosome and the split it belongs to."""

    chrom: str
    start: int
    end: int
    split: str


def split_blocks(lengths: dict[str, int], cfg: SplitConfig) -> list[Block]:
    """Every chromosome cut into blocks labelled train / val / test (whole chromosomes in chromosome mode; the
    given blocks in bed mode)."""
    if cfg.by == "bed":
        return read_split_bed(cfg.blocks, lengths)
    if cfg.by == "chromosome":
        missing = [c for c in cfg.val_chromosomes + cfg.test_chromosomes if c not in lengths]
        if missing:
            raise ConfigError(f"data split: chromosome {missing[0]!r} is not in the FASTA")
        held = {c: "val" for c in cfg.val_chromosomes} | {c: "test" for c in cfg.test_chromosomes}
        return [Block(c, 0, n, held.get(c, "train")) for c, n in lengths.items()]
    # a chromosome with enough blocks draws its own held-out share (every chromosome, e.g. every species, in every
    # split); the blocks of smaller ones (scaffolds, contigs) are pooled and drawn together
    enough = math.ceil(1 / min(f for f in (cfg.val_fraction, cfg.test_fraction) if f > 0))
    starts = {c: list(range(0, n, cfg.block_size)) for c, n in lengths.items()}
    groups = [[(c, i) for i in range(len(starts[c]))] for c in lengths if len(starts[c]) >= enough]
    pooled = [(c, i) for c in lengths if len(starts[c]) < enough for i in range(len(starts[c]))]
    label: dict[tuple[str, int], str] = {}
    for index, group in enumerate(groups + ([pooled] if pooled else [])):
        order = list(group)
        random.Random(cfg.seed * 1_000_003 + index).shuffle(order)
        n_test = max(1, round(len(order) * cfg.test_fraction))
        n_val = round(len(order) * cfg.val_fraction) if cfg.val_fraction else 0
        n_val = max(n_val, 1) if cfg.val_fraction and len(order) - n_test > 1 else n_val
        label |= {key: "test" for key in order[:n_test]} | {key: "val" for key in order[n_test:n_test + n_val]}
    return [Block(c, s, min(s + cfg.block_size, lengths[c]), label.get((c, i), "train"))
            for c in lengths for i, s in enumerate(starts[c])]


def read_split_bed(path: str, lengths: dict[str, int]) -> list[Block]:
    """The blocks of a split BED (name = train, val or test) in genome order, with the bases it does not list as
    blocks of no split (`NO_SPLIT`); overlapping blocks are an error."""
    listed: dict[str, list[tuple[int, Block]]] = {}
    for record in read_bed_regions(path, lengths):
        if record.name not in SPLITS:
            raise InputFileError(f"{path}: line {record.line}: the 4th column must be train, val or test, "
                                 f"got {record.name!r}")
        listed.setdefault(record.chrom, []).append((record.line, Block(record.chrom, record.start, record.end,
                                                                       record.name)))
    blocks = []
    for chrom, length in lengths.items():
        end = 0
        for line, block in sorted(listed.get(chrom, []), key=lambda lb: lb[1].start):
            if block.start < end:
                raise InputFileError(f"{path}: line {line}: block {chrom}:{block.start}-{block.end} overlaps "
                                     "another block")
            if block.start > end:
                blocks.append(Block(chrom, end, block.start, NO_SPLIT))
            blocks.append(block)
            end = block.end
        if end < length:
            blocks.append(Block(chrom, end, length, NO_SPLIT))
    return blocks


def split_of(window: Interval, blocks_by_chrom: dict[str, list[Block]]) -> str | None:
    """The split of every block a window touches, or None when it touches more than one split or bases of no
    split."""
    touched = {b.split for b in blocks_by_chrom.get(window.chrom, []) if b.start < window.end and window.start < b.end}
    if not touched:  # reads only bases past the chromosome's end (padding): the split of its last block
        touched = {blocks_by_chrom[window.chrom][-1].split} if window.chrom in blocks_by_chrom else set()
    return touched.pop() if len(touched) == 1 and NO_SPLIT not in touched else None


def blocks_by_chromosome(blocks: list[Block]) -> dict[str, list[Block]]:
    grouped: dict[str, list[Block]] = {}
    for block in blocks:
        grouped.setdefault(block.chrom, []).append(block)
    return grouped


def write_blocks_bed(blocks: list[Block], path: Path) -> None:
    """The blocks as BED4 (name = split), bases of no split left out: readable back with `split.by: bed`."""
    path.write_text("".join(f"{b.chrom}\t{b.start}\t{b.end}\t{b.split}\n" for b in blocks if b.split != NO_SPLIT))


def write_split_beds(blocks: list[Block], out_dir: str | Path) -> dict[str, Path]:
    """`split_blocks.bed` (name = split) and `val.bed` / `test.bed` for a pre-training config's val_intervals /
    test_intervals, so a backbone is never trained on a task's held-out sequence."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"all": out / "split_blocks.bed", "val": out / "val.bed", "test": out / "test.bed"}
    write_blocks_bed(blocks, paths["all"])
    for split in ("val", "test"):
        paths[split].write_text("".join(f"{b.chrom}\t{b.start}\t{b.end}\n" for b in blocks if b.split == split))
    return paths


class SplitLoaders:
    """The Lightning loader hooks of a data module whose `dataloader(split, shuffle)` serves a split: training
    shuffled, validation and test in order (validation never falls back to test)."""

    def train_dataloader(self):
        return self.dataloader("train", shuffle=True)

    def val_dataloader(self):
        return self.dataloader("val")

    def test_dataloader(self):
        return self.dataloader("test")
