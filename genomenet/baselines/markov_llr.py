"""The Markov baseline of variant scoring: the same log-likelihood ratio as the model's, under an order-k Markov model
counted on the FASTA outside every contig's scored span (first to last variant, widened by the window)."""

from __future__ import annotations

import math

import numpy as np

from genomenet.baselines.markov import MarkovModel, fit_markov
from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import Interval, subtract
from genomenet.data.region_tokens import region_tokens
from genomenet.data.tokenizers import KmerTokenizer
from genomenet.data.variants import AllelePair


def markov_training_part(genome: PreparedGenome, spans: dict[str, tuple[int, int]], window: int) -> list[Interval]:
    """The genome outside every contig's scored span widened by `window` on each side."""
    whole = [Interval(c, 0, n) for c, n in genome.lengths.items()]
    held = [Interval(c, max(0, a - window), min(genome.chromosome(c).length, b + window))
            for c, (a, b) in spans.items()]
    return [iv for iv in subtract(whole, held) if iv.length > window]


def fit_markov_baseline(genome: PreparedGenome, tokenizer: KmerTokenizer, training: list[Interval],
                        max_order: int) -> MarkovModel:
    return fit_markov(region_tokens(genome, tokenizer, training), np.arange(tokenizer.n_id), max_order)


def markov_llr(markov: MarkovModel, pair: AllelePair) -> float:
    """The Markov model's ln P(alt) - ln P(ref) over the same tokens as the model's llr."""
    n = max(len(pair.ref), len(pair.alt))
    rows = np.full((2, n), -1, dtype=np.int64)
    rows[0, :len(pair.ref)], rows[1, :len(pair.alt)] = pair.ref, pair.alt
    differ = np.nonzero(rows[0] != rows[1])[0]
    first = max(int(differ[0]) if len(differ) else n, 1)
    total = [markov.log2_probs(row[row >= 0][None])[0][0, first:].sum() for row in rows]
    return float(total[1] - total[0]) * math.log(2)
