"""Dense multi-head attention with the forward signature of `DilatedMultiheadAttention`.

The `attention: dense` switch of the backbone: the reference a dilated model is compared with, and the fast path for
short contexts where every token can see every other.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genomenet.attention.module import RotaryEmbedding  # one rotary convention for both attention paths
from genomenet.attention.rows import dilated_attention_rows


def attention_mask(key_padding_mask: Tensor | None, n: int, causal: bool, device: torch.device) -> Tensor | None:
    """Boolean mask (b or 1, 1, n, n), True = may attend; None when nothing is masked beyond plain causality."""
    if key_padding_mask is None:
        return None
    allowed = ~key_padding_mask[:, None, None, :]  # (b, 1, 1, n)
    if causal:
        allowed = allowed & torch.ones(n, n, dtype=torch.bool, device=device).tril()
    # a query whose keys are all padding attends to itself, so its (ignored) output is finite, never NaN
    return allowed | torch.eye(n, dtype=torch.bool, device=device)


class DenseMultiheadAttention(nn.Module):
    """Full softmax attention over the whole sequence, rotary positions applied to q and k."""

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        causal: bool = True,
        bias: bool = False,
        rotary_base: float = 10000.0,
    ) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.num_heads, self.causal = num_heads, causal
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.out = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.rotary = RotaryEmbedding(embed_dim // num_heads, rotary_base)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, positions: Tensor | None = None) -> Tensor:
        b, n, e = x.shape
        if positions is None:
            positions = torch.arange(n, device=x.device)
        q, k, v = self.project(x, positions)
        return self.out(self.attend(q, k, v, key_padding_mask).reshape(b, n, e))

    def project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v ``(b, n, h, d)`` of ``x`` at ``positions`` ``(n,)`` or ``(b, n)``, q and k rotated."""
        b, n, e = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, e // self.num_heads).unbind(2)
        return self.rotary(q, positions), self.rotary(k, positions), v

    def attend_rows(self, rows, starts: Tensor, lengths: Tensor, past, past_index: Tensor) -> Tensor:
        """Rows ``starts[b] ..`` of causal ``attend`` from their q, k, v and a cached prefix: dense causal attention
        is dilated attention's one branch ``w >= n, r = 1``."""
        longest = past[0].shape[1] + rows[0].shape[1]
        return dilated_attention_rows(rows, starts, lengths, past, past_index, (longest,), (1,))

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        """Softmax attention of ``(b, n, h, d)`` q, k, v over every (earlier, when causal) key."""
        mask = attention_mask(key_padding_mask, q.shape[1], self.causal, q.device)
        q, k, v = (t.transpose(1, 2) for t in (q, k, v))  # (b, h, n, d)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=self.causal and mask is None)
        return y.transpose(1, 2)
