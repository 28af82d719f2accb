"""How long exact dilated attention takes beside dense attention at one sequence length (`genomenet demo` prints it;
`benchmarks/attention.py` is the full sweep with memory and slopes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from genomenet.attention.backends import last_backend
from genomenet.attention.dilated import dilated_attention


@dataclass(frozen=True)
class AttentionTiming:
    """Seconds for one forward+backward of causal attention over one sequence, dilated and dense."""

    seq_len: int
    segment_lengths: tuple[int, ...]
    dilation_rates: tuple[int, ...]
    dilated_s: float
    dense_s: float
    backend: str
    """The kernel dilated attention ran on (`backends.last_backend`)."""


def seconds(fn: Callable[[], object]) -> float:
    """Wall-clock seconds of one call of `fn`."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def time_dilated_vs_dense(
    seq_len: int = 16384,
    heads: int = 8,
    head_dim: int = 64,
    segment_lengths: tuple[int, ...] = (2048, 4096, 8192, 16384),
    dilation_rates: tuple[int, ...] = (1, 2, 4, 8),
) -> AttentionTiming:
    """Time forward+backward of causal dilated attention and of dense causal SDPA on the same random q, k, v
    (float32, on the CPU, one sequence of `seq_len` tokens)."""
    q, k, v = (torch.randn(1, seq_len, heads, head_dim, requires_grad=True) for _ in range(3))  # (b, n, h, d)
    dilated = seconds(lambda: dilated_attention(q, k, v, segment_lengths, dilation_rates, causal=True).sum().backward())
    backend = last_backend()
    qt, kt, vt = (x.detach().transpose(1, 2).requires_grad_() for x in (q, k, v))  # (b, h, n, d) for SDPA
    dense = seconds(lambda: F.scaled_dot_product_attention(qt, kt, vt, is_causal=True).sum().backward())
    return AttentionTiming(seq_len, tuple(segment_lengths), tuple(dilation_rates), dilated, dense, backend)
