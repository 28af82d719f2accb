"""Genome data: FASTA -> prepared cache -> tokens -> windows -> batches.

`prepare` a FASTA once into memory-mapped arrays, tokenize windows with `NucleotideTokenizer` or `KmerTokenizer`,
and serve them to Lightning with `GenomeDataModule`. See docs/data.md.
"""

from genomenet.data.cache import PreparedGenome, prepare, prepare_main
from genomenet.data.datamodule import GenomeDataModule, split_regions
from genomenet.data.intervals import Interval, read_bed
from genomenet.data.tokenizers import KmerTokenizer, NucleotideTokenizer, Tokenizer, make_tokenizer, soft_mask
from genomenet.data.windows import GenomeWindows, WindowSampler, collate_windows

__all__ = [
    "GenomeDataModule",
    "GenomeWindows",
    "Interval",
    "KmerTokenizer",
    "NucleotideTokenizer",
    "PreparedGenome",
    "Tokenizer",
    "WindowSampler",
    "collate_windows",
    "make_tokenizer",
    "prepare",
    "prepare_main",
    "read_bed",
    "soft_mask",
    "split_regions",
]
