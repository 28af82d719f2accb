"""Sliding-window (local) multi-head attention with the forward signature of `DilatedMultiheadAttention`.

The fixed sparse baseline of the `attention: local` switch: each query attends to the `window` nearest keys (causal:
itself and the `window - 1` before it; bidirectional: up to `window // 2` on each side), as in Longformer's and
Mistral's local attention. Computed block by block (queries in blocks of `window`, keys from the neighbouring
blocks), so time and memory are linear in the sequence length and any length runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from genomenet.model.dense import DenseMultiheadAttention


def local_key_mask(window: int, causal: bool, device: torch.device) -> Tensor:
    """(window, 3 * window) bool, True = query a of a block may see key c of (previous, own, next) block."""
    query = torch.arange(window, device=device)[:, None] + window   # positions within the three blocks
    key = torch.arange(3 * window, device=device)[None, :]
    if causal:
        return (key <= query) & (query - key < window)
    return (key - query).abs() <= window // 2


def local_allowed(valid: Tensor, window: int, causal: bool) -> Tensor:
    """``(b, blocks, window, 3 * window)`` bool: which keys of the (previous, own, next) block each query of a block
    may see, given ``valid`` ``(b, blocks * window)`` keys. A query always sees itself (a padded one too, so its
    ignored output stays finite)."""
    w = window
    key_ok = F.pad(valid, (w, w), value=False).unfold(1, 3 * w, w)   # (b, blocks, 3w)
    allowed = local_key_mask(w, causal, valid.device)[None, None] & key_ok[:, :, None, :]
    itself = torch.arange(3 * w, device=valid.device)[None, :] == torch.arange(w, device=valid.device)[:, None] + w
    return allowed | itself


class LocalMultiheadAttention(DenseMultiheadAttention):
    """Exact sliding-window attention over ``(batch, seq, embed_dim)``: the dense layer's projections and rotary
    positions, each query attending to its ``window`` nearest keys."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        window: int,
        causal: bool = True,
        bias: bool = False,
        rotary_base: float = 10000.0,
    ) -> None:
        super().__init__(embed_dim, num_heads, causal, bias, rotary_base)
        if window < 1:
            raise ValueError(f"local attention window must be >= 1, got {window}")
        self.window = window

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        return local_attention(q, k, v, self.window, self.causal, key_padding_mask)

    attend_rows = None
    """No cached-rows path: callers that extend a cached prefix run whole sequences instead."""


def local_attention(q: Tensor, k: Tensor, v: Tensor, window: int, causal: bool,
                    key_padding_mask: Tensor | None = None) -> Tensor:
    """``(b, n, h, d)`` -> ``(b, n, h, d)``: softmax over each query's window of keys."""
    b, n, h, d = q.shape
    w = window
    blocks = -(-n // w)
    pad = blocks * w - n
    valid = torch.ones(b, n, dtype=torch.bool, device=q.device) if key_padding_mask is None else ~key_padding_mask
    allowed = local_allowed(F.pad(valid, (0, pad), value=False), w, causal)   # (b, blocks, w, 3w)
    # one padding block before and after the sequence, so block j's keys are blocks j-1, j, j+1 of the padded one
    q, k, v = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (q, k, v))
    k, v = (F.pad(t, (0, 0, 0, 0, w, w)) for t in (k, v))
    q_blocks = q.view(b, blocks, w, h, d)
    k_blocks = k.unfold(1, 3 * w, w).permute(0, 1, 4, 2, 3)       # (b, blocks, 3w, h, d)
    v_blocks = v.unfold(1, 3 * w, w).permute(0, 1, 4, 2, 3)
    q_blocks, k_blocks, v_blocks = (t.permute(0, 1, 3, 2, 4) for t in (q_blocks, k_blocks, v_blocks))  # (b, B, h, ., d)
    y = F.scaled_dot_product_attention(q_blocks, k_blocks, v_blocks, attn_mask=allowed[:, :, None])
    return y.permute(0, 1, 3, 2, 4).reshape(b, blocks * w, h, d)[:, :n]
