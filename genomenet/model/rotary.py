"""Rotary position encoding for the dense path, used only until `genomenet.attention.module` provides it.

Same convention as the attention package: rotate pairs (x[..., :d/2], x[..., d/2:]) by angle p * base^(-2i/d).
"""

from __future__ import annotations

import torch
from torch import Tensor


def rotary_angles(positions: Tensor, head_dim: int, base: float = 10000.0) -> tuple[Tensor, Tensor]:
    """cos and sin of the rotation for each absolute position: two (n, head_dim/2) tensors."""
    inv_freq = base ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * inv_freq[None, :]  # (n, d/2)
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, positions: Tensor, base: float = 10000.0) -> Tensor:
    """Rotate x (b, n, h, d) by its positions (n,); d must be even."""
    cos, sin = rotary_angles(positions, x.shape[-1], base)
    cos, sin = cos[None, :, None, :].to(x.dtype), sin[None, :, None, :].to(x.dtype)  # (1, n, 1, d/2)
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)
