"""Do the model's embeddings separate CDS, introns, mobile elements and intergenic DNA better than k-mer counts?

Labelled 300-base windows of D. melanogaster chr4 (make_regions.py) are embedded with `genomenet embed` (one
mean-pooled row per window), projected to 2-D by PCA beside the same picture of their 4-mer frequencies, and both
feature sets are scored by logistic regression cross-validated over 100 kb blocks of the chromosome (GroupKFold), so
that neighbouring windows of one element never sit on both sides of a split. Needs a trained model:

    bash scripts/quickstart.sh                  # trains runs/quickstart/model
    python tasks/embedding_pca/run.py           # writes runs/embedding_pca/
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path

import numpy as np
from make_regions import CLASSES, FASTA, make_regions, read_fasta

BLOCK = 100_000
"""Bases per cross-validation group: windows closer than this mostly share a fold."""
COLOURS = {"cds": "tab:red", "intron": "tab:blue", "mobile_element": "tab:green", "intergenic": "tab:gray"}
COMPLEMENT = str.maketrans("ACGT", "TGCA")


def kmer_frequencies(sequences: list[str], k: int) -> np.ndarray:
    """(n, 4**k) frequencies of the overlapping k-mers of each sequence; k-mers with a non-ACGT base are skipped."""
    index = {"".join(kmer): i for i, kmer in enumerate(itertools.product("ACGT", repeat=k))}
    counts = np.zeros((len(sequences), len(index)))
    for row, seq in enumerate(sequences):
        for i in range(len(seq) - k + 1):
            column = index.get(seq[i : i + k])
            if column is not None:
                counts[row, column] += 1
    return counts / counts.sum(1, keepdims=True).clip(min=1)


def window_sequences(coords: np.ndarray, fasta: Path) -> list[str]:
    """Each row's bases as the model read them: reverse complemented on the minus strand, uppercase."""
    genome = read_fasta(fasta)
    out = []
    for row in coords:
        seq = genome[row["chrom"]][row["start"] : row["end"]]
        out.append(seq.translate(COMPLEMENT)[::-1] if row["strand"] == "-" else seq)
    return out


def embed_regions(model: Path, bed: Path, out: Path, layer: int, reverse_complement: str) -> Path:
    """`genomenet embed --per region` through its library function; a previous file is replaced, not resumed."""
    from genomenet.inference.embed import EmbedOptions, embed

    out.unlink(missing_ok=True)
    options = EmbedOptions(per="region", layer=layer, reverse_complement=reverse_complement)
    print(f"genomenet embed --model {model} --fasta {FASTA} --regions {bed} --out {out} --per region "
          f"--layer {layer} --reverse-complement {reverse_complement} --quiet")
    return embed(model, FASTA, out, bed, options, device="cpu", progress=False)


def cross_validated(features: np.ndarray, labels: np.ndarray, groups: np.ndarray, folds: int) -> dict[str, float]:
    """Accuracy and macro-F1 of standardised logistic regression, mean and sd over genomic-block folds."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    scores = cross_validate(model, features, labels, groups=groups, cv=GroupKFold(n_splits=folds),
                            scoring=("accuracy", "f1_macro"))
    return {name: float(scores[f"test_{key}"].mean()) for key, name in (("accuracy", "acc"), ("f1_macro", "f1"))} | {
        f"{name}_sd": float(scores[f"test_{key}"].std()) for key, name in (("accuracy", "acc"), ("f1_macro", "f1"))}


def results_table(scores: dict[str, dict[str, float]], dims: dict[str, int], n: int, folds: int) -> str:
    """A markdown table of the scores, one row per feature set."""
    lines = [f"{n} windows, {len(CLASSES)} balanced classes (chance 0.25); logistic regression, GroupKFold "
             f"({folds} folds) over {BLOCK // 1000} kb blocks; mean +- sd over folds", "",
             "| features | dims | accuracy | macro-F1 |", "|---|---:|---:|---:|"]
    for name, s in scores.items():
        lines.append(f"| {name} | {dims[name]} | {s['acc']:.3f} +- {s['acc_sd']:.3f} | {s['f1']:.3f} +- "
                     f"{s['f1_sd']:.3f} |")
    return "\n".join(lines)


def verdict(scores: dict[str, dict[str, float]], model_row: str, kmer_row: str) -> str:
    """One plain sentence: do the embeddings beat the k-mer baseline on macro-F1?"""
    gap = scores[model_row]["f1"] - scores[kmer_row]["f1"]
    if abs(gap) < scores[kmer_row]["f1_sd"]:
        return f"The embeddings and the {kmer_row} baseline are within one fold sd of each other (gap {gap:+.3f})."
    side = "beat" if gap > 0 else "LOSE TO"
    return f"The model embeddings {side} the {kmer_row} baseline by {abs(gap):.3f} macro-F1."
