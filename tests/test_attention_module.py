"""DilatedMultiheadAttention is a drop-in attention layer: projections, rotary positions, masks."""

import pytest
import torch
import torch.nn.functional as F

from genomenet.attention import DilatedMultiheadAttention
from genomenet.attention.module import RotaryEmbedding


def make_layer(causal=True, segments=(16, 32), dilations=(1, 2), heads=4, dim=32):
    torch.manual_seed(0)
    return DilatedMultiheadAttention(dim, heads, segments, dilations, causal=causal).double()


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_one_segment_covering_the_sequence_equals_standard_attention(causal):
    layer = make_layer(causal, segments=(1000,), dilations=(1,))
    x = torch.randn(2, 50, 32, dtype=torch.float64)
    b, n, _ = x.shape
    q, k, v = layer.qkv(x).view(b, n, 3, 4, 8).unbind(2)
    pos = torch.arange(n)
    q, k = layer.rotary(q, pos), layer.rotary(k, pos)
    ref = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
    torch.testing.assert_close(layer(x), layer.out(ref.transpose(1, 2).reshape(b, n, -1)))


def test_output_depends_only_on_relative_positions():
    layer = make_layer(causal=False)
    x = torch.randn(1, 64, 32, dtype=torch.float64)
    shifted = layer(x, positions=torch.arange(64) + 12345)
    torch.testing.assert_close(layer(x), shifted, rtol=1e-6, atol=1e-8)


def test_causal_layer_does_not_look_ahead():
    layer = make_layer(causal=True)
    x = torch.randn(1, 64, 32, dtype=torch.float64)
    changed = x.clone()
    changed[:, 40:] = torch.randn(1, 24, 32, dtype=torch.float64)
    torch.testing.assert_close(layer(x)[:, :40], layer(changed)[:, :40])


def test_padded_keys_do_not_change_unpadded_outputs():
    layer = make_layer(causal=False)
    x = torch.randn(2, 48, 32, dtype=torch.float64)
    padding = torch.zeros(2, 48, dtype=torch.bool)
    padding[1, 30:] = True
    changed = x.clone()
    changed[1, 30:] = 100 * torch.randn(18, 32, dtype=torch.float64)
    torch.testing.assert_close(layer(x, padding)[1, :30], layer(changed, padding)[1, :30])


def test_rotary_preserves_norms_and_rejects_odd_head_dim():
    rotary = RotaryEmbedding(8)
    x = torch.randn(2, 10, 3, 8)
    torch.testing.assert_close(rotary(x, torch.arange(10)).norm(dim=-1), x.norm(dim=-1))
    with pytest.raises(ValueError, match="even head_dim"):
        RotaryEmbedding(7)


def test_layer_trains_in_bfloat16():
    layer = DilatedMultiheadAttention(32, 4, (16, 32), (1, 2)).to(torch.bfloat16)
    x = torch.randn(2, 40, 32, dtype=torch.bfloat16, requires_grad=True)
    layer(x).float().pow(2).mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in layer.parameters())
    assert torch.isfinite(x.grad).all()


def test_invalid_layer_arguments_raise_value_error():
    with pytest.raises(ValueError, match="divisible"):
        DilatedMultiheadAttention(30, 4, (16,), (1,))
    with pytest.raises(ValueError, match="one dilation rate per segment"):
        DilatedMultiheadAttention(32, 4, (16, 32), (1,))


@pytest.mark.parametrize(("args", "kwargs", "message"), [
    ((32, 0, (16,), (1,)), {}, "num_heads must be positive integers"),
    ((32, -4, (16,), (1,)), {}, "num_heads must be positive integers"),
    ((0, 4, (16,), (1,)), {}, "embed_dim must be positive integers"),
    ((32, 4, (0, 16), (1, 2)), {}, "segment_lengths must be positive integers"),
    ((32, 4, (16,), (0,)), {}, "dilation_rates must be positive integers"),
    ((32, 4, (16,), (1,)), {"causal": False, "sliding_window": 8}, "sliding_window needs causal=True"),
    ((32, 4, (16,), (1,)), {"sliding_window": -1}, "sliding_window must be a non-negative integer"),
    ((32, 4, (16,), (1,)), {"backend": "nope"}, "unknown attention backend"),
])
def test_layer_arguments_that_attention_would_refuse_are_refused_when_the_layer_is_built(args, kwargs, message):
    """Not at the first forward (or as a ZeroDivisionError / RuntimeError), possibly hours into a job."""
    with pytest.raises(ValueError, match=message):
        DilatedMultiheadAttention(*args, **kwargs)


def test_wrong_input_shapes_are_one_value_error_naming_the_expected_shape():
    """Not "not enough values to unpack", a matmul shape error or a broadcast error from inside the layer."""
    layer = DilatedMultiheadAttention(8, 2, (4,), (1,))
    with pytest.raises(ValueError, match=r"x must be \(batch, seq, embed_dim=8\), got shape \(10, 8\)"):
        layer(torch.randn(10, 8))
    with pytest.raises(ValueError, match=r"embed_dim=8\), got shape \(1, 10, 6\)"):
        layer(torch.randn(1, 10, 6))
    with pytest.raises(ValueError, match=r"positions must be \(10,\) or \(1, 10\), got shape \(5,\)"):
        layer(torch.randn(1, 10, 8), positions=torch.arange(5))
    for positions in (torch.arange(10), torch.arange(10)[None], torch.arange(20).view(2, 10)):
        assert layer(torch.randn(2, 10, 8), positions=positions).shape == (2, 10, 8)


def float64_rotary(x, positions, base=10000.0):
    """Rotary written from RoFormer in float64: pair (i, i + d/2) turns by position * base^(-2i/d)."""
    d = x.shape[-1]
    freq = torch.tensor([base ** (-2 * i / d) for i in range(d // 2)], dtype=torch.float64)
    angles = positions.double()[:, None] * freq                          # (n, d/2)
    cos, sin = angles.cos()[None, :, None], angles.sin()[None, :, None]
    x1, x2 = x.double()[..., : d // 2], x.double()[..., d // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def test_rotary_angles_stay_exact_at_chromosome_scale_positions():
    """At position 3e6 a float32 angle is off by up to 0.1 radian; computed in float64 the float32 rotation is exact
    to float32 rounding, and so attention still depends only on relative positions."""
    gen = torch.Generator().manual_seed(0)
    n, shift = 256, 3_000_000
    x = torch.randn(2, n, 4, 16, generator=gen)
    positions = torch.arange(n) + shift
    rotated = RotaryEmbedding(16)(x, positions)
    assert rotated.dtype == torch.float32
    torch.testing.assert_close(rotated.double(), float64_rotary(x, positions), rtol=0, atol=1e-5)
    torch.manual_seed(0)
    for causal in (False, True):
        layer = DilatedMultiheadAttention(64, 4, (64, 128, 256), (1, 2, 4), causal=causal)
        x = torch.randn(2, n, 64, generator=gen)
        with torch.no_grad():
            torch.testing.assert_close(layer(x, positions=positions), layer(x), rtol=0, atol=1e-5)


def test_rotary_frequencies_survive_casting_the_layer_to_bfloat16():
    rotary = RotaryEmbedding(16).to(torch.bfloat16)
    x = torch.randn(1, 64, 2, 16, dtype=torch.bfloat16)
    positions = torch.arange(64) + 100_000
    torch.testing.assert_close(rotary(x, positions).double(), float64_rotary(x, positions), rtol=1e-2, atol=1e-2)
