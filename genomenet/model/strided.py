"""Strided sparse attention (Sparse Transformer's strided pattern, Child et al. 2019) with the forward signature of
`DilatedMultiheadAttention`.

The second fixed sparse baseline of the `attention` switch (`strided`): each query attends to its `stride` nearest
keys and to every key a whole number of strides away (causal: itself, the `stride - 1` keys before it, and the keys
`stride`, `2 * stride`, ... before it; bidirectional: up to `stride // 2` on each side, and every `stride`-th key on
both sides). Sparse Transformer takes the stride near the square root of the training length, so a query sees about
`2 * sqrt(n)` keys and two layers connect every pair of positions.

The two key sets are disjoint, so each is attended on its own and the two are merged by their softmax denominators,
as LongNet merges its branches: the near part block by block (queries in blocks of `stride`, keys from the
neighbouring blocks), the strided part column by column (the positions that share an index modulo `stride`). Time and
memory grow as ``n * (stride + n / stride)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from genomenet.model.dense import DenseMultiheadAttention
from genomenet.model.local import local_allowed


def default_stride(segment_lengths: list[int]) -> int:
    """Sparse Transformer's choice: the square root of the longest span the model is shaped for, rounded."""
    return max(1, round(math.sqrt(max(segment_lengths))))


class StridedMultiheadAttention(DenseMultiheadAttention):
    """Exact strided sparse attention over ``(batch, seq, embed_dim)``: the dense layer's projections and rotary
    positions, each query attending to its `stride` nearest keys and to every `stride`-th key beyond them."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        stride: int,
        causal: bool = True,
        bias: bool = False,
        rotary_base: float = 10000.0,
    ) -> None:
        super().__init__(embed_dim, num_heads, causal, bias, rotary_base)
        if stride < 1:
            raise ValueError(f"strided attention stride must be >= 1, got {stride}")
        self.stride = stride

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        return strided_attention(q, k, v, self.stride, self.causal, key_padding_mask)

    attend_rows = None
    """No cached-rows path: callers that extend a cached prefix run whole sequences instead."""


def strided_attention(q: Tensor, k: Tensor, v: Tensor, stride: int, causal: bool,
                      key_padding_mask: Tensor | None = None) -> Tensor:
    """``(b, n, h, d)`` -> ``(b, n, h, d)``: softmax over each query's near keys and strided keys together."""
    b, n, h, d = q.shape
    blocks = -(-n // stride)
    pad = blocks * stride - n
    valid = torch.ones(b, n, dtype=torch.bool, device=q.device) if key_padding_mask is None else ~key_padding_mask
    valid = F.pad(valid, (0, pad), value=False)                       # (b, N), N = blocks * stride
    q, k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q, k, v))
    near_out, near_lse = near_part(q, k, v, valid, stride, causal)
    far_out, far_lse = strided_part(q, k, v, valid, stride, causal)
    lse = torch.logaddexp(near_lse, far_lse)                         # (b, N, h); near_lse is finite
    out = torch.exp(near_lse - lse)[..., None] * near_out + torch.exp(far_lse - lse)[..., None] * far_out
    return out[:, :n]


def near_part(q: Tensor, k: Tensor, v: Tensor, valid: Tensor, stride: int, causal: bool) -> tuple[Tensor, Tensor]:
    """Each query's `stride` nearest keys, blocks of `stride` queries against the blocks before and after:
    ``(b, N, h, d)`` output and ``(b, N, h)`` log-sum-exp. A query always sees itself (a padded one too, so it stays
    finite; its output is ignored)."""
    b, n, h, d = q.shape
    blocks, w = n // stride, stride
    k, v = (F.pad(t, (0, 0, 0, 0, w, w)) for t in (k, v))
    allowed = local_allowed(valid, w, causal)                         # (b, blocks, w, 3w)
    q_blocks = q.view(b, blocks, w, h, d)
    k_blocks, v_blocks = (t.unfold(1, 3 * w, w).permute(0, 1, 4, 2, 3) for t in (k, v))   # (b, blocks, 3w, h, d)
    scores = torch.einsum("bcqhd,bckhd->bchqk", q_blocks, k_blocks) / math.sqrt(d)
    out, lse = masked_softmax_attend(scores, allowed[:, :, None], v_blocks.transpose(2, 3))   # (b, B, h, w, .)
    return out.permute(0, 1, 3, 2, 4).reshape(b, n, h, d), lse.permute(0, 1, 3, 2).reshape(b, n, h)


def strided_part(q: Tensor, k: Tensor, v: Tensor, valid: Tensor, stride: int, causal: bool) -> tuple[Tensor, Tensor]:
    """Each query's keys a whole number (>= 1) of strides away, column by column (positions equal modulo `stride`):
    ``(b, N, h, d)`` output and ``(b, N, h)`` log-sum-exp (very negative where a query has no such key)."""
    b, n, h, d = q.shape
    rows = n // stride

    def columns(t: Tensor) -> Tensor:   # (b, N, h, d) -> (b, stride, h, rows, d): position = row * stride + column
        return t.view(b, rows, stride, h, d).permute(0, 2, 3, 1, 4)

    row = torch.arange(rows, device=q.device)
    allowed = row[None, :] < row[:, None] if causal else row[None, :] != row[:, None]   # (query row, key row)
    key_ok = valid.view(b, rows, stride).transpose(1, 2)                                 # (b, stride, rows)
    allowed = allowed[None, None, None] & key_ok[:, :, None, None, :]                    # (b, stride, 1, rows, rows)
    scores = columns(q) @ columns(k).transpose(-1, -2) / math.sqrt(d)                   # (b, stride, h, rows, rows)
    out, lse = masked_softmax_attend(scores, allowed, columns(v))
    return out.permute(0, 3, 1, 2, 4).reshape(b, n, h, d), lse.permute(0, 3, 1, 2).reshape(b, n, h)


def masked_softmax_attend(scores: Tensor, allowed: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
    """Softmax of ``scores`` over the allowed keys (last dim) applied to ``v``, and its log-sum-exp. A row with no
    allowed key gives output 0 and a log-sum-exp at the dtype's floor: weight 0 when merged, and no NaN in the
    backward pass (a -inf fill would give one)."""
    scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
    lse = scores.logsumexp(-1)
    weights = torch.exp(scores - lse[..., None]) * allowed
    return weights @ v, lse
