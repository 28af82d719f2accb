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
