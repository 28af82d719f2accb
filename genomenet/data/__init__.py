"""Genome data: FASTA -> prepared cache -> tokens -> windows -> batches.

`prepare` a FASTA once into memory-mapped arrays, tokenize windows with `NucleotideTokenizer` or `KmerTokenizer`,
and serve them to Lightning with `GenomeDataModule`. See docs/data.md.

Names are imported on first use, so `genomenet prepare` and the tokenizers do not pay for importing torch and
Lightning.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "PreparedGenome": "cache",
    "prepare": "cache",
    "GenomeDataModule": "datamodule",
    "split_regions": "datamodule",
    "Interval": "intervals",
    "read_bed": "intervals",
    "KmerTokenizer": "tokenizers",
    "NucleotideTokenizer": "tokenizers",
    "Tokenizer": "tokenizers",
    "make_tokenizer": "tokenizers",
    "soft_mask": "tokenizers",
    "GenomeWindows": "windows",
    "WindowSampler": "windows",
    "collate_windows": "windows",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'genomenet.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"genomenet.data.{_EXPORTS[name]}"), name)
