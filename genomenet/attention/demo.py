"""A one-minute look at dilated attention: where it runs, how long it takes, and how dense attention compares."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from genomenet.attention.backends import last_backend
from genomenet.attention.dilated import dilated_attention


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def run_demo(seq_len: int = 16384, heads: int = 8, head_dim: int = 64) -> None:
    """Time forward+backward of causal dilated attention against dense attention at ``seq_len`` tokens."""
    segments, dilations = (2048, 4096, 8192, 16384), (1, 2, 4, 8)
    q, k, v = (torch.randn(1, seq_len, heads, head_dim, requires_grad=True) for _ in range(3))
    dilated = _seconds(lambda: dilated_attention(q, k, v, segments, dilations, causal=True).sum().backward())
    print(f"dilated attention, w={segments}, r={dilations}: {seq_len} tokens forward+backward in {dilated:.2f} s "
          f"on the {last_backend()} backend")
    qt, kt, vt = (x.detach().transpose(1, 2).requires_grad_() for x in (q, k, v))
    dense = _seconds(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True).sum().backward())
    print(f"dense causal attention: {dense:.2f} s, {dense / dilated:.1f}x the dilated time (dense grows as N^2, "
          "dilated as N)")
