"""Where long context pays: copies found exactly as a brute-force search finds them, kinds of target, paired gains."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genomenet.attention import dilated_attention
from genomenet.evaluation.context_gain import (
    NO_COPY,
    AttentionPattern,
    TargetKinds,
    breakdown_table,
    paired_gain,
    repeat_distance,
    scored_sum_and_count,
)
from genomenet.evaluation.lm_scores import context_curve, target_nll, window_nll
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import bits_per_base, causal_targets, nll_sum_and_count


def brute_force_distance(row: list[int], n_id: int, match: int) -> list[int]:
    """For each t: (t - 1) - end of the latest earlier run equal to row[t - match : t], searched one by one."""
    out = []
    for t in range(len(row)):
        run = row[t - match : t] if t >= match else None
        found = NO_COPY
        if run is not None and all(x < n_id for x in run):
            for end in range(t - 2, match - 2, -1):
                if row[end - match + 1 : end + 1] == run:
                    found = (t - 1) - end
                    break
        out.append(found)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_repeat_distance_matches_a_brute_force_search(seed: int) -> None:
    rng = np.random.default_rng(seed)
    windows = rng.integers(0, 2, size=(3, 80))  # a two-letter alphabet: many short repeats
    windows[1, 30:36] = 4  # N never counts as part of a copy
    windows[2, 50:58] = windows[2, 5:13]  # a planted copy
    got = repeat_distance(torch.from_numpy(windows), n_id=4, match=5)
    for row, got_row in zip(windows.tolist(), got):
        assert got_row.tolist() == brute_force_distance(row, 4, 5)


def test_a_copy_far_back_is_a_far_copy_and_a_near_one_is_not() -> None:
    rng = np.random.default_rng(0)
    window = rng.integers(0, 4, size=300)
    window[250:270] = window[20:40]  # 230 tokens back
    window[120:140] = window[100:120]  # 20 tokens back
    windows = torch.from_numpy(window[None])
    soft = torch.zeros_like(windows, dtype=torch.bool)
    soft[0, 200:] = True
    kinds = TargetKinds.of(windows, soft, n_id=4, score_tokens=200, near=100, match=8)
    far = kinds.masks["far copy (>100 back)"]
    assert far[0, 258 - 100 : 270 - 100].all()  # targets 258..269 follow 8 copied tokens
    assert not far[0, 128 - 100 : 140 - 100].any()
    assert kinds.masks["soft-masked"][0].tolist() == [False] * 100 + [True] * 100
    assert (kinds.masks["unmasked"] == ~kinds.masks["soft-masked"]).all()


@pytest.mark.parametrize(
    ("segments", "dilations", "heads", "sliding"),
    [((8, 24, 48), (1, 2, 4), 4, 0), ((6, 20, 64), (1, 3, 8), 3, 0), ((16,), (1,), 2, 0), ((24, 48), (2, 4), 4, 6)],
)
def test_one_hop_reach_is_where_dilated_attention_puts_weight(segments, dilations, heads, sliding) -> None:
    """Values that are one-hot in the key position show, per query, every key some head attends to."""
    n = 48
    q = k = torch.zeros(1, n, heads, n, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64)[None, :, None, :].expand(1, n, heads, n)
    weights = dilated_attention(q, k, v, segments, dilations, causal=True, sliding_window=sliding)[0]
    attended = (weights.abs() > 1e-12).any(dim=1).numpy()   # (query, key)
    query, key = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    pattern = AttentionPattern(segments, dilations, heads, sliding)
    assert (pattern.one_hop_reachable(query, key) == attended).all()


def test_a_far_copy_is_one_hop_only_when_its_distance_fits_a_dilated_head() -> None:
    rng = np.random.default_rng(1)
    window = rng.integers(0, 4, size=400)
    # the query predicting a target is one before it, the copied token `distance` before it: d - 1 apart
    window[301:321] = window[100:120]  # 201 back: query and key 200 apart, a multiple of r = 4
    window[350:370] = window[152:172]  # 198 back: 197 apart, which no head of either branch joins
    pattern = AttentionPattern((64, 400), (1, 4), num_heads=4)
    kinds = TargetKinds.of(torch.from_numpy(window[None]), None, 4, 100, near=64, match=12, pattern=pattern)
    far, one_hop = kinds.masks["far copy (>64 back)"][0], kinds.masks["far copy, one hop"][0]
    assert far[313 - 300 : 321 - 300].all() and one_hop[313 - 300 : 321 - 300].all()
    assert far[362 - 300 : 370 - 300].all() and not one_hop[362 - 300 : 370 - 300].any()
    assert not (one_hop & ~far).any()


def test_paired_gain_is_the_mean_difference_with_two_standard_errors_over_windows() -> None:
    short = np.log(2) * np.array([[2.0, 2.0, np.nan], [1.0, 3.0, 2.0]])
    long = np.log(2) * np.array([[1.0, 1.0, 1.0], [1.0, 2.0, 2.0]])
    gain, two_se = paired_gain(short, long)
    assert gain == pytest.approx((1 + 1 + 0 + 1 + 0) / 5)
    per_window = np.array([1.0, 1 / 3])
    assert two_se == pytest.approx(2 * per_window.std(ddof=1) / math.sqrt(2))


def test_breakdown_table_has_a_row_per_context_and_a_column_per_kind() -> None:
    scores = {16: np.full((2, 4), np.log(2) * 2.0), 256: np.full((2, 4), np.log(2) * 1.5)}
    kinds = TargetKinds({"soft-masked": np.array([[True, False, False, False]] * 2)})
    table = breakdown_table(scores, kinds, bases_per_token=1).splitlines()
    assert "all (8)" in table[0] and "soft-masked (2)" in table[0]
    assert table[2].split()[:3] == ["256", "1.5000", "1.5000"]
    assert bits_per_base(*scored_sum_and_count(scores[16]), bases_per_token=2) == pytest.approx(1.0)


def test_every_bits_per_base_figure_agrees_on_the_same_targets() -> None:
    """The logged metric (tensor sums), the report's headline (window sums), the context curve and the breakdown
    table all go through `objectives.bits_per_base`, so one model on one set of targets gives one figure."""
    model = LongNet(LongNetConfig(vocab_size=20, n_layers=1, d_model=16, n_heads=2, attention="dense")).eval()
    k, n_id, windows = 2, 16, torch.randint(0, 17, (3, 40))  # 2-mer ids 0..15, 16 = N (never a target)
    with torch.no_grad():
        logged = float(bits_per_base(*nll_sum_and_count(model(windows), causal_targets(windows, windows < n_id)), k))
    headline = bits_per_base(*window_nll(model, windows, n_id), k)
    nll = target_nll(model, windows, n_id)  # (w, n), NaN where unscored
    table = bits_per_base(*scored_sum_and_count(nll), k)
    breakdown = float(breakdown_table({1: nll}, TargetKinds({}), k).splitlines()[1].split()[1])
    curve = context_curve(model, windows, n_id, contexts=[1], score_tokens=39, bases_per_token=k)[1]
    assert logged == pytest.approx(headline, rel=1e-5)
    assert table == pytest.approx(headline, rel=1e-9)
    assert breakdown == pytest.approx(headline, abs=5e-5)
    assert curve == pytest.approx(headline, rel=1e-9)


def test_bits_per_base_is_nan_when_no_target_was_scored() -> None:
    assert math.isnan(bits_per_base(*scored_sum_and_count(np.full((2, 3), np.nan)), bases_per_token=3))
