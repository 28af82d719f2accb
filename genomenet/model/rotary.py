"""Rotary position encoding for the dense path when `genomenet.attention` is not installed.

Same convention and interface as `genomenet.attention.module.RotaryEmbedding` (which is used when it imports):
rotate the pairs (x[..., :d/2], x[..., d/2:]) by the angle p * base^(-2i/d).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RotaryEmbedding(nn.Module):
    """Rotary encoding on absolute positions; no persistent state, so weights do not depend on which one ran."""

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary encoding needs an even head_dim, got {head_dim}")
        inv_freq = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate x (b, n, h, d) by positions (n,)."""
        angles = positions.float()[:, None] * self.inv_freq  # (n, d/2)
        cos, sin = angles.cos()[None, :, None, :], angles.sin()[None, :, None, :]  # (1, n, 1, d/2)
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1).to(x.dtype)
