"""The order-k Markov baseline: exact counts, known entropies, order chosen on held-out data."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

from genomenet.baselines.markov import count_orders, fit_markov

ACGT = np.arange(4)


def test_a_periodic_sequence_costs_almost_nothing_at_an_order_that_sees_the_period() -> None:
    rng = np.random.default_rng()
    period = rng.integers(0, 4, 5)
    seq = np.tile(period, 4000)
    model = count_orders([seq], ACGT, max_order=6)
    bits, n = model.with_order(5).bits_per_token(seq[None, :])
    assert bits / n < 0.01


def test_iid_uniform_bases_cost_two_bits_and_the_chosen_order_is_low() -> None:
    rng = np.random.default_rng()
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
    rng = np.random.default_rng()
    seq = rng.integers(0, 5, 3000)  # includes N (4), which breaks contexts
    model = count_orders([seq], ACGT, max_order=3, alpha=1.0)
    for order in range(4):
        brute = Counter(
            tuple(seq[t - order : t + 1]) for t in range(order, len(seq)) if (seq[t - order : t + 1] < 4).all()
        )
        assert model.joint[order][1].sum() == sum(brute.values())
        assert sorted(model.joint[order][1].tolist()) == sorted(brute.values())
