"""Objectives and their metrics: targets, BERT masking, bits per base."""

from __future__ import annotations

import math

import torch

from genomenet.model.objectives import (
    IGNORE,
    bits_per_base,
    causal_targets,
    mask_tokens,
    nll_sum_and_count,
    perplexity,
)


def test_causal_targets_are_the_next_token_and_skip_unscorable_ones() -> None:
    ids = torch.tensor([[0, 1, 4, 3, 2]])  # 4 = N
    targets = causal_targets(ids, ids < 4)
    assert targets.tolist() == [[1, IGNORE, 3, 2, IGNORE]]


def test_bits_per_base_of_a_uniform_model_over_four_bases_is_two() -> None:
    logits = torch.zeros(1, 5, 4)  # uniform over A C G T
    targets = torch.tensor([[0, 1, 2, 3, IGNORE]])
    nll, count = nll_sum_and_count(logits, targets)
    assert count == 4
    assert math.isclose(float(bits_per_base(nll, count)), 2.0, rel_tol=1e-6)
    assert math.isclose(float(perplexity(nll, count)), 4.0, rel_tol=1e-6)


def test_bits_per_base_matches_a_hand_computed_case_and_divides_by_k_for_kmers() -> None:
    # p(target) = 1/2 for one token and 1/8 for the other: 1 + 3 = 4 bits over 2 tokens
    logits = torch.log(torch.tensor([[[0.5, 0.5, 0.0 + 1e-30], [1 / 8, 7 / 8, 1e-30]]]))
    nll, count = nll_sum_and_count(logits, torch.tensor([[0, 0]]))
    assert math.isclose(float(bits_per_base(nll, count)), 2.0, rel_tol=1e-5)
    assert math.isclose(float(bits_per_base(nll, count, bases_per_token=3)), 4 / 6, rel_tol=1e-5)


def test_masking_picks_about_15_percent_of_scorable_tokens_and_replaces_them_80_10_10() -> None:
    g = torch.Generator().manual_seed(15)  # the fractions are statistics of the draw
    ids = torch.randint(0, 4, (64, 1024))
    ids[:, :100] = 4  # N is never a target
    inputs, targets = mask_tokens(ids, ids < 4, mask_id=6, replacement_ids=torch.arange(4), generator=g)
    chosen = targets != IGNORE
    assert not chosen[:, :100].any()
    assert abs(chosen.float().mean().item() / (924 / 1024) - 0.15) < 0.01
    assert torch.equal(targets[chosen], ids[chosen])
    masked = (inputs[chosen] == 6).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()  # includes random picks of the same base
    assert abs(masked - 0.8) < 0.02 and abs(kept - (0.1 + 0.1 / 4)) < 0.02
    assert torch.equal(inputs[~chosen], ids[~chosen])
