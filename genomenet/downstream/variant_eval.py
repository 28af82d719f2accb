"""Variant scores against labels: AUROC and AUPRC of every score beside an order-k Markov model's own LLR.

Labels are 1 for the class a score should rank first (e.g. rare, pathogenic) and 0 otherwise. Each score is oriented
as an effect size, higher = more disruptive: -llr, -log_odds, cosine, l2 (and -LLR for the Markov baseline). The
Markov model is counted on the FASTA outside every scored contig's variant span (first to last variant, widened by
the window), its order chosen on the tail of that training part, and scores exactly the windows the model scores.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from genomenet.baselines.markov import MarkovModel, fit_markov
from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Interval, subtract
from genomenet.data.tokenizers import KmerTokenizer
from genomenet.downstream.variant_effects import AllelePair
from genomenet.errors import InputFileError

EFFECT_SIGN = {"llr": -1.0, "log_odds": -1.0, "cosine": 1.0, "l2": 1.0, "markov_llr": -1.0}


def read_label_tsv(path: str | Path) -> dict[tuple[str, int, str, str], int]:
    """(chrom, 1-based pos, REF, ALT) -> 0/1 from a TSV with a header `chrom pos ref alt label`."""
    labels = {}
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        missing = {"chrom", "pos", "ref", "alt", "label"} - set(rows.fieldnames or [])
        if missing:
            raise InputFileError(f"{path}: labels TSV needs the columns chrom pos ref alt label ({sorted(missing)} "
                                 "missing)")
        for line, row in enumerate(rows, start=2):
            if row["label"] not in ("0", "1"):
                raise InputFileError(f"{path}: line {line}: label must be 0 or 1, got {row['label']!r}")
            labels[(row["chrom"], int(row["pos"]), row["ref"].upper(), row["alt"].upper())] = int(row["label"])
    return labels


def markov_training_part(genome: PreparedGenome, spans: dict[str, tuple[int, int]], window: int) -> list[Interval]:
    """The genome outside every contig's scored span widened by `window` on each side."""
    whole = [Interval(c, 0, n) for c, n in genome.lengths.items()]
    held = [Interval(c, max(0, a - window), min(genome.chromosome(c).length, b + window))
            for c, (a, b) in spans.items()]
    return [iv for iv in subtract(whole, held) if iv.length > window]


def fit_markov_baseline(genome: PreparedGenome, tokenizer: KmerTokenizer, training: list[Interval],
                        max_order: int) -> MarkovModel:
    sequences = [np.asarray(tokenizer.encode_packed(genome.window(iv.chrom, iv.start, iv.end)), dtype=np.int64)
                 for iv in training]
    return fit_markov(sequences, np.arange(tokenizer.n_id), max_order)


def markov_llr(markov: MarkovModel, pair: AllelePair) -> float:
    """The Markov model's ln P(alt) - ln P(ref) over the same tokens as the model's llr."""
    n = max(len(pair.ref), len(pair.alt))
    rows = np.full((2, n), -1, dtype=np.int64)
    rows[0, :len(pair.ref)], rows[1, :len(pair.alt)] = pair.ref, pair.alt
    differ = np.nonzero(rows[0] != rows[1])[0]
    first = max(int(differ[0]) if len(differ) else n, 1)
    total = [markov.log2_probs(row[row >= 0][None])[0][0, first:].sum() for row in rows]
    return float(total[1] - total[0]) * math.log(2)


@dataclass
class LabelledScores:
    """Per scored ALT: its label and its scores (NaN where not scored)."""

    labels: list[int] = field(default_factory=list)
    scores: dict[str, list[float]] = field(default_factory=dict)

    def add(self, label: int, values: dict[str, float | None]) -> None:
        self.labels.append(label)
        for name, value in values.items():
            self.scores.setdefault(name, []).append(np.nan if value is None else value)

    def table(self) -> str:
        y = np.asarray(self.labels)
        lines = [f"labelled ALTs: {len(y)} ({int(y.sum())} positive); scores oriented higher = more disruptive",
                 "| score | scored | AUROC | AUPRC |", "|---|---:|---:|---:|"]
        for name, values in self.scores.items():
            x = EFFECT_SIGN.get(name, 1.0) * np.asarray(values)
            ok = ~np.isnan(x)
            both = 0 < y[ok].sum() < ok.sum()
            auroc = roc_auc_score(y[ok], x[ok]) if both else float("nan")
            auprc = average_precision_score(y[ok], x[ok]) if both else float("nan")
            shown = "Markov LLR (baseline)" if name == "markov_llr" else name
            lines.append(f"| {shown} | {int(ok.sum())} | {auroc:.3f} | {auprc:.3f} |")
        return "\n".join(lines)
