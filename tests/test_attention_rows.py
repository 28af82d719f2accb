"""`dilated_attention_rows`: causal dilated attention at some rows, the earlier positions read from a cached prefix,
equals the same rows of the independent dense float64 reference (docs/attention.md, "The contract"); and
`LongNet.extend` continues a `prefill` exactly as the whole sequence would run."""

from __future__ import annotations

import pytest
import torch
from dense_reference import dense_dilated_attention

from genomenet.attention.rows import dilated_attention_rows
from genomenet.model.longnet import LongNet, LongNetConfig

SHAPES = [  # (n, segment_lengths, dilation_rates, heads): r dividing w or not, ragged tails, w >= n
    (100, [16, 40, 100], [1, 3, 5], 4),
    (64, [8, 32], [2, 4], 3),
    (77, [10, 200], [3, 1], 2),
    (50, [7], [3], 5),
]


@pytest.mark.parametrize(("n", "segments", "rates", "heads"), SHAPES)
def test_rows_equal_the_dense_reference_at_those_rows(n: int, segments: list, rates: list, heads: int) -> None:
    q, k, v = (torch.randn(4, n, heads, 8, dtype=torch.float64) for _ in range(3))
    expected = dense_dilated_attention(q, k, v, segments, rates, causal=True)
    starts, lengths, s = torch.tensor([0, 13, n - 20, 30]), torch.tensor([20, 7, 20, 1]), 20
    index = (starts[:, None] + torch.arange(s)).clamp_max(n - 1)
    rows = tuple(torch.stack([x[b, index[b]] for b in range(4)]) for x in (q, k, v))
    # the cache holds each sequence's true positions before its rows, noise from its first row on (never read),
    # and in another order than the rows
    before = (torch.arange(n)[None, :] < starts[:, None])[..., None, None]
    past = tuple(torch.where(before, x, torch.randn_like(x) * 100).flip(0) for x in (q, k, v))
    out = dilated_attention_rows(rows, starts, lengths, past, torch.tensor([3, 2, 1, 0]), segments, rates)
    for b in range(4):
        rows_b = slice(int(starts[b]), int(starts[b] + lengths[b]))
        torch.testing.assert_close(out[b, :lengths[b]], expected[b, rows_b], rtol=1e-10, atol=1e-10)
        assert out[b, lengths[b]:].abs().max() == 0 if lengths[b] < s else True


def test_rows_may_run_past_the_cached_positions() -> None:
    """An insertion makes the alternative longer than the reference it continues from."""
    n, extra = 40, 9
    q, k, v = (torch.randn(1, n + extra, 2, 4, dtype=torch.float64) for _ in range(3))
    expected = dense_dilated_attention(q, k, v, [16, 64], [1, 2], causal=True)
    start = n - 5
    rows = tuple(x[:, start:] for x in (q, k, v))
    out = dilated_attention_rows(rows, torch.tensor([start]), torch.tensor([5 + extra]),
                                 tuple(x[:, :n] for x in (q, k, v)), torch.tensor([0]), [16, 64], [1, 2])
    torch.testing.assert_close(out, expected[:, start:], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("attention", ["dilated", "dense"])
def test_extend_continues_a_prefill_as_the_whole_sequence_runs(attention: str) -> None:
    cfg = LongNetConfig(vocab_size=6, n_layers=2, d_model=32, n_heads=4, segment_lengths=[8, 16, 40],
                        dilation_rates=[1, 2, 4], attention=attention)
    model = LongNet(cfg).double().eval()
    n, s = 40, 10
    reference = torch.randint(0, 4, (3, n))
    variant = reference.clone()
    starts = torch.tensor([5, 17, 33])
    variant[torch.arange(3), starts] = (variant[torch.arange(3), starts] + 1) % 4
    with torch.no_grad():
        hidden, cache = model.prefill(reference)
        torch.testing.assert_close(hidden, model.hidden_states(reference))
        whole = model.hidden_states(variant)
        index = (starts[:, None] + torch.arange(s)).clamp_max(n - 1)
        lengths = (n - starts).clamp_max(s)
        rows = model.extend(torch.stack([variant[b, index[b]] for b in range(3)]), starts, lengths, cache,
                            torch.arange(3))
    for b in range(3):
        torch.testing.assert_close(rows[b, :lengths[b]], whole[b, starts[b]:starts[b] + lengths[b]])


def test_extend_refuses_models_it_cannot_continue() -> None:
    local = LongNet(LongNetConfig(vocab_size=6, n_layers=1, d_model=16, n_heads=2, attention="local"))
    masked = LongNet(LongNetConfig(vocab_size=6, n_layers=1, d_model=16, n_heads=2), causal=False)
    for model in (local, masked):
        assert not model.can_extend
        with pytest.raises(ValueError, match="causal model"):
            model.extend(torch.zeros(1, 2, dtype=torch.long), torch.tensor([1]), torch.tensor([2]), [],
                         torch.tensor([0]))
