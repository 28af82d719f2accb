"""`VariantDataModule`: labelled variants of a VCF as (reference window, alternative window, label) batches.

Labels come from a TSV (`chrom pos ref alt label`, label 0/1) or an INFO field (a Flag, or 0/1 per ALT); each ALT
of a record is one example, and only SNVs, MNVs and indels with a label are kept (REF is checked against the FASTA:
a mismatch is an error naming the record). The split is by genomic block over the span the variants cover, so no
window is read on both sides. Each example also carries the Markov baseline's LLR of the same windows (an order-k
Markov model counted on the FASTA outside the variants' span).
"""

from __future__ import annotations

import sys

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader

from genomenet.baselines.markov_llr import fit_markov_baseline, markov_llr, markov_training_part
from genomenet.data.cache import prepare
from genomenet.data.intervals import Interval
from genomenet.data.splits import (
    SPLITS,
    Block,
    SplitConfig,
    SplitLoaders,
    blocks_by_chromosome,
    split_blocks,
    split_of,
)
from genomenet.data.tokenizers import make_tokenizer
from genomenet.data.variants import (
    SCORABLE,
    AllelePair,
    ContigMatcher,
    allele_windows,
    info_label,
    label_of,
    open_vcf,
    read_label_tsv,
    read_variants,
    unused_label_rows,
)
from genomenet.errors import ConfigError, InputFileError


class VariantExamples(torch.utils.data.Dataset):
    def __init__(self, pairs: list[AllelePair], targets: list[int], markov: list[float], where: list[str]) -> None:
        self.pairs, self.targets, self.markov, self.where = pairs, targets, markov, where

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, i: int) -> dict:
        return {"ref": self.pairs[i].ref, "alt": self.pairs[i].alt, "target": float(self.targets[i]),
                "markov": self.markov[i], "index": i, "site": int(self.pairs[i].variant_tokens[0])}


def pad_stack(rows: list[np.ndarray], pad_id: int) -> torch.Tensor:
    out = np.full((len(rows), max(len(r) for r in rows)), pad_id, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return torch.from_numpy(out)


class VariantDataModule(SplitLoaders, L.LightningDataModule):
    """Labelled variants for a supervised variant-effect head."""

    def __init__(
        self,
        fasta: str,
        vcf: str,
        labels: str | None = None,
        label_info: str | None = None,
        context_length: int = 1024,
        kmer_size: int = 1,
        split: SplitConfig = SplitConfig(block_size=100_000),  # noqa: B008 - read-only default
        markov_max_order: int = 8,
        batch_size: int = 16,
        num_workers: int = 0,
        cache_dir: str | None = None,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            fasta: the reference FASTA the VCF was called against.
            vcf: VCF or BCF (plain or bgzipped).
            labels: TSV with columns chrom pos ref alt label (0/1); or give label_info.
            label_info: an INFO field holding the label (a Flag, or 0/1 per ALT).
            context_length: bases per window around each variant (as `genomenet score-variants --window`).
            kmer_size: bases per token; must match the backbone's.
            split: blocks over the span the variants cover (block mode), or held-out chromosomes.
            markov_max_order: the Markov baseline's order is chosen in 0..this.
            batch_size: variants per batch.
            num_workers: DataLoader workers.
            cache_dir: prepared-genome cache.
            sequence_parallel_size: must be 1.
        """
        super().__init__()
        if (labels is None) == (label_info is None):
            raise ConfigError("data: give exactly one of data.labels (a TSV) and data.label_info (an INFO field)")
        if sequence_parallel_size != 1:
            raise ConfigError("variant fine-tuning reads one window per device: data.sequence_parallel_size must be 1")
        self.fasta, self.vcf, self.labels_path, self.label_info = fasta, vcf, labels, label_info
        self.context_length, self.kmer_size, self.sequence_parallel_size = context_length, kmer_size, 1
        self.split_cfg, self.markov_max_order = split, markov_max_order
        self.batch_size, self.num_workers, self.cache_dir = batch_size, num_workers, cache_dir
        self.tokenizer = make_tokenizer(kmer_size)
        self.splits: dict[str, VariantExamples] = {}
        self.blocks: list[Block] = []

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        genome = prepare(self.fasta, self.cache_dir)
        table = read_label_tsv(self.labels_path) if self.labels_path else None
        examples, spans, self._matched = [], {}, set()
        match = ContigMatcher(self.vcf, genome.names)
        for record, variant in read_variants(open_vcf(self.vcf), self.vcf, match):
            end = variant.start + len(variant.ref)
            if end > genome.chromosome(variant.chrom).length or \
                    genome.sequence(variant.chrom, variant.start, end).upper() != variant.ref:
                raise InputFileError(f"{self.vcf}: record {variant.number} ({record.chrom}:{record.pos}): REF "
                                     f"{variant.ref} does not match the FASTA")
            for a, (alt, kind) in enumerate(zip(variant.alts, variant.kinds, strict=True)):
                label = self._label(table, record, variant.chrom, a)
                if label is None or kind not in SCORABLE:
                    continue
                pair = allele_windows(genome, variant, alt, self.context_length, self.tokenizer, "+")
                if isinstance(pair, str):
                    continue
                examples.append((variant, pair, label))
                lo, hi = spans.get(variant.chrom, (variant.start, end))
                spans[variant.chrom] = (min(lo, variant.start), max(hi, end))
        if table is not None:
            self._check_label_rows(table)
        if not examples:
            raise InputFileError(f"{self.vcf}: no labelled SNV or indel to train on")
        markov = fit_markov_baseline(genome, self.tokenizer, markov_training_part(genome, spans, self.context_length),
                                     self.markov_max_order)
        self.blocks = self._blocks(spans, genome.lengths)
        self._split(examples, markov)

    def _label(self, table, record, chrom: str, a: int) -> int | None:
        """The ALT's label; a TSV row may name the contig as the VCF or as the FASTA does (a `chr` prefix)."""
        if table is not None:
            label, key = label_of(table, record, chrom, a)
            if key is not None:
                self._matched.add(key)
            return label
        return info_label(record, a, self.label_info, self.vcf)

    def _check_label_rows(self, table: dict) -> None:
        """Rows of the labels TSV that name no ALT of the VCF: an error when that is every row, else a note."""
        what = unused_label_rows(table, self._matched, self.labels_path, self.vcf)
        if what is None:
            return
        if not self._matched:
            raise InputFileError(f"{what}: chrom, pos, ref and alt must be as the VCF writes them")
        print(f"genomenet: note: {what}; they are not used", file=sys.stderr)

    def _blocks(self, spans: dict[str, tuple[int, int]], lengths: dict[str, int]) -> list[Block]:
        """Blocks over each contig's variant span (block mode), whole contigs (chromosome mode), or the given ones
        (bed mode)."""
        if self.split_cfg.by == "bed":
            return split_blocks(lengths, self.split_cfg)
        if self.split_cfg.by == "chromosome":
            return split_blocks({c: b for c, (_, b) in spans.items()}, self.split_cfg)
        blocks = []
        for chrom, (lo, hi) in spans.items():
            blocks += [Block(b.chrom, b.start + lo, b.end + lo, b.split)
                       for b in split_blocks({chrom: hi - lo + 1}, self.split_cfg)]
        return blocks

    def _split(self, examples: list, markov) -> None:
        by_chrom = blocks_by_chromosome(self.blocks)
        parts: dict[str, list] = {s: [] for s in SPLITS}
        k = self.tokenizer.k
        left = (self.context_length // 2) // k * k  # the bases allele_windows reads
        for variant, pair, label in examples:
            end = variant.start + max(self.context_length - left, len(variant.ref))
            window = Interval(variant.chrom, variant.start - left, end)
            split = split_of(window, by_chrom)
            if split is not None:
                parts[split].append((variant, pair, label))
        for split in SPLITS:
            if len({y for *_, y in parts[split]}) < 2:
                raise ConfigError(f"{self.vcf}: the split leaves {split} without both labels "
                                  f"({len(parts[split])} variants); change data.split")
        self.splits = {s: VariantExamples([p for _, p, _ in rows], [y for *_, y in rows],
                                          [markov_llr(markov, p) for _, p, _ in rows],
                                          [f"{v.chrom}:{v.start + 1}" for v, *_ in rows]) for s, rows in parts.items()}

    def collate(self, items: list[dict]) -> dict:
        pad = self.tokenizer.pad_id
        column = {key: [i[key] for i in items] for key in items[0]}
        return {"ref": pad_stack(column["ref"], pad), "alt": pad_stack(column["alt"], pad),
                **{key: torch.tensor(column[key]) for key in ("target", "markov", "index", "site")}}

    def dataloader(self, split: str, shuffle: bool = False) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=self.batch_size, shuffle=shuffle, collate_fn=self.collate,
                          num_workers=self.num_workers)

    def summary(self) -> str:
        return "variants: " + ", ".join(f"{s} {len(self.splits[s])} ({sum(self.splits[s].targets)} positive)"
                                        for s in SPLITS)
