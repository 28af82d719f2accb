"""The order-k Markov baseline: exact counts, known entropies, order chosen on held-out data."""

from __future__ import annotations

import math
import tracemalloc
from collections import Counter

import numpy as np
import pytest

from genomenet.baselines.markov import (
    CountTable,
    MarkovModel,
    bits_on_spans,
    context_codes,
    count_orders,
    fit_markov,
    symbols,
    valid_run,
)
from genomenet.data.intervals import Interval
from genomenet.data.region_tokens import region_tokens
from genomenet.data.tokenizers import KmerTokenizer

ACGT = np.arange(4)


def test_a_periodic_sequence_costs_almost_nothing_at_an_order_that_sees_the_period() -> None:
    rng = np.random.default_rng(0)
    period = rng.integers(0, 4, 5)
    seq = np.tile(period, 4000)
    model = count_orders([seq], ACGT, max_order=6)
    bits, n = model.with_order(5).bits_per_token(seq[None, :])
    assert bits / n < 0.01


def test_iid_uniform_bases_cost_two_bits_and_the_chosen_order_is_low() -> None:
    rng = np.random.default_rng(1)
    train, test = rng.integers(0, 4, 100_000), rng.integers(0, 4, (20, 500))
    model = fit_markov([train], ACGT, max_order=8)
    bits, n = model.bits_per_token(test)
    assert model.order <= 3
    assert abs(bits / n - 2.0) < 0.02


def test_probabilities_are_add_alpha_smoothed_counts() -> None:
    seq = np.array([0, 1, 0, 1, 0, 2, 0, 1])
    model = count_orders([seq], ACGT, max_order=1, alpha=0.5).with_order(1)
    pairs = Counter(zip(seq[:-1].tolist(), seq[1:].tolist(), strict=True))
    after0 = sum(c for (a, _), c in pairs.items() if a == 0)
    lp, scored = model.log2_probs(np.array([[0, 1]]))
    assert scored.tolist() == [[False, True]]
    assert math.isclose(lp[0, 1], math.log2((pairs[(0, 1)] + 0.5) / (after0 + 0.5 * 4)))


def test_tokens_outside_the_alphabet_are_not_scored_and_cut_the_context() -> None:
    seq = np.tile(np.array([0, 1, 2, 3]), 1000)
    model = count_orders([seq], ACGT, max_order=3).with_order(3)
    window = np.array([[0, 1, 2, 4, 0, 1, 2, 3]])  # an N (id 4) in the middle
    lp, scored = model.log2_probs(window)
    assert not scored[0, 3]
    # the token after N has no context: order 0 probability of base 0, about 1/4
    assert abs(lp[0, 4] - math.log2(0.25)) < 0.01
    assert lp[0, 7] > -0.01  # three bases of context again: certain


def test_counts_of_every_order_match_a_brute_force_count() -> None:
    rng = np.random.default_rng(2)
    seq = rng.integers(0, 5, 3000)  # includes N (4), which breaks contexts
    model = count_orders([seq], ACGT, max_order=3, alpha=1.0)
    for order in range(4):
        brute = Counter(
            tuple(seq[t - order : t + 1]) for t in range(order, len(seq)) if (seq[t - order : t + 1] < 4).all()
        )
        assert model.joint[order].seen()[1].sum() == sum(brute.values())
        assert sorted(model.joint[order].seen()[1].tolist()) == sorted(brute.values())


# The implementation before streaming (counts of each order from np.unique over every code of the training data),
# kept as the reference the streaming counts must equal exactly.
def previous_count_orders(sequences, alphabet, max_order, alpha=0.5) -> MarkovModel:
    alphabet = np.unique(np.asarray(alphabet, dtype=np.int64))
    base = len(alphabet)
    joint, context = [], []
    for j in range(max_order + 1):
        codes = []
        for seq in sequences:
            sym = symbols(np.asarray(seq, dtype=np.int64), alphabet)
            keep = valid_run(sym) >= j + 1
            codes.append((context_codes(sym, j, base) * base + sym)[keep])
        keys, counts = np.unique(np.concatenate(codes) if codes else np.zeros(0, np.int64), return_counts=True)
        joint.append(CountTable(keys, counts))
        ctx_keys, inverse = np.unique(keys // base, return_inverse=True)
        ctx_counts = np.bincount(inverse, weights=counts, minlength=len(ctx_keys)).astype(np.int64)
        context.append(CountTable(ctx_keys, ctx_counts))
    return MarkovModel(alphabet, max_order, alpha, joint, context, max_order)


def previous_fit_markov(sequences, alphabet, max_order, alpha=0.5, validation_fraction=0.1) -> MarkovModel:
    cut = [max(1, int(len(s) * (1 - validation_fraction))) for s in sequences]
    fit = previous_count_orders([s[:c] for s, c in zip(sequences, cut)], alphabet, max_order, alpha)
    held = [s[c:] for s, c in zip(sequences, cut) if len(s) > c]

    def bits(model: MarkovModel) -> float:
        scored = [model.bits_per_token(np.asarray(s, dtype=np.int64)[None, :]) for s in held]
        return sum(b for b, _ in scored) / sum(n for _, n in scored)

    best = min(range(max_order + 1), key=lambda k: bits(fit.with_order(k)))
    return previous_count_orders(sequences, alphabet, max_order, alpha).with_order(best)


def assert_same_counts(model: MarkovModel, reference: MarkovModel) -> None:
    for tables, expected in ((model.joint, reference.joint), (model.context, reference.context)):
        for table, reference_table in zip(tables, expected, strict=True):
            (keys, counts), (ref_keys, ref_counts) = table.seen(), reference_table.seen()
            np.testing.assert_array_equal(keys, ref_keys)
            np.testing.assert_array_equal(counts, ref_counts)


@pytest.fixture(scope="module")
def dmel_tokens(dmel) -> list[np.ndarray]:
    """The real fly sequence (soft-masked, with a 17 kb N run) as k=1 token ids, cut in two sequences."""
    chrom = next(iter(dmel.lengths))
    seq = KmerTokenizer(1).encode_packed(dmel.window(chrom, 0, dmel.lengths[chrom]))
    return [seq[:150_000], seq[150_000:]]


def shortened(sequences: list[np.ndarray], chunk_tokens: int) -> list[np.ndarray]:
    """Chunks of a few tokens are tested on a few thousand tokens (plus random ones with N), to stay fast."""
    if chunk_tokens >= 100:
        return sequences
    return [sequences[0][:3_000], np.random.default_rng(11).integers(0, 5, 1_000)]


@pytest.mark.parametrize("chunk_tokens", [5, 1_000, 65_536, 1 << 20])
@pytest.mark.parametrize("dense_limit", [1 << 26, 0])  # 0: every order in the sorted, merged table
def test_streamed_counts_equal_the_counts_of_the_whole_training_data(dmel_tokens, chunk_tokens, dense_limit) -> None:
    sequences = shortened(dmel_tokens, chunk_tokens)
    reference = previous_count_orders(sequences, ACGT, max_order=6)
    model = count_orders(sequences, ACGT, max_order=6, chunk_tokens=chunk_tokens, dense_limit=dense_limit)
    assert_same_counts(model, reference)
    windows = dmel_tokens[1][: 40 * 1000].reshape(40, 1000)
    for order in (0, 3, 6):
        assert model.with_order(order).bits_per_token(windows) == reference.with_order(order).bits_per_token(windows)


@pytest.mark.parametrize("chunk_tokens", [3, 4_096, 1 << 20])
def test_order_chosen_on_the_training_tail_and_final_counts_are_unchanged_by_streaming(dmel_tokens, chunk_tokens):
    rng = np.random.default_rng(7)
    sequences = [*shortened(dmel_tokens, chunk_tokens), rng.integers(0, 5, 2_000), np.zeros(0, np.int64), np.array([2])]
    reference = previous_fit_markov(sequences, ACGT, max_order=8)
    model = fit_markov(sequences, ACGT, max_order=8, chunk_tokens=chunk_tokens)
    assert model.order == reference.order
    assert_same_counts(model, reference)
    previous_tail = [reference.with_order(k) for k in range(9)]
    tails = [(s, max(1, int(len(s) * 0.9)), len(s)) for s in sequences if len(s) > max(1, int(len(s) * 0.9))]
    for k, ref in enumerate(previous_tail):
        expected = sum(ref.bits_per_token(s[c:][None, :])[0] for s, c, _ in tails)
        expected /= sum(ref.bits_per_token(s[c:][None, :])[1] for s, c, _ in tails)
        assert bits_on_spans(model.with_order(k), tails, chunk_tokens) == pytest.approx(expected, rel=1e-12)


def peak_bytes_of_fitting(n_tokens: int, order: int) -> int:
    tokens = np.random.default_rng(3).integers(0, 5, n_tokens, dtype=np.uint8)  # allocated before tracing
    tracemalloc.start()
    try:
        fit_markov([tokens], ACGT, max_order=order, chunk_tokens=1 << 16)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_memory_of_counting_does_not_grow_with_the_training_length() -> None:
    small, large = peak_bytes_of_fitting(1_000_000, 4), peak_bytes_of_fitting(4_000_000, 4)
    assert large < 1.3 * small, (small, large)
    assert large < 32 * 8 * (1 << 16), large  # a few int64 arrays of one chunk (the data: 4 MB of uint8)


@pytest.mark.parametrize("k", [1, 3])
def test_region_tokens_slices_equal_slices_of_the_whole_regions_tokens(dmel, k: int) -> None:
    chrom = next(iter(dmel.lengths))
    tok = KmerTokenizer(k)
    lazy = region_tokens(dmel, tok, [Interval(chrom, 1_001, 60_000)])[0]
    whole = np.asarray(tok.encode_packed(dmel.window(chrom, 1_001, 60_000)), dtype=np.int64)
    assert len(lazy) == len(whole)
    for lo, hi in [(0, 10), (5, 5), (17, 4_000), (len(whole) - 3, len(whole) + 10), (0, None)]:
        np.testing.assert_array_equal(lazy[lo:hi], whole[lo:hi])
