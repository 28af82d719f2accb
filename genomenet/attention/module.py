"""``DilatedMultiheadAttention``: the drop-in attention layer of a LongNet block, with rotary positions."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from genomenet.attention.backends import available_backends
from genomenet.attention.dilated import check_sliding_window, dilated_attention, positive_integers
from genomenet.attention.rows import dilated_attention_rows


class RotaryEmbedding(nn.Module):
    """Rotary position encoding (RoFormer) on absolute positions.

    Applied to q and k *before* sparsification, so a pair's score depends only on its distance in the genome,
    whichever branch or sequence-parallel rank brings the two together.

    Angles ``position * frequency`` are computed in float64: float32 keeps 24 bits, so at a global position of
    3 million an angle would be off by up to 0.1 radian (a chromosome-scale window loses its relative positions).
    The frequencies are not a buffer, so casting the module (``.half()``, ``.to(torch.bfloat16)``) cannot round them.
    """

    def __init__(self, head_dim: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary encoding needs an even head_dim, got {head_dim}")
        self.head_dim, self.base = head_dim, base

    def forward(self, x: Tensor, positions: Tensor) -> Tensor:
        """Rotate ``x (b, n, h, d)`` by ``positions`` ``(n,)`` or ``(b, n)``; float32 math (float64 for float64 x)."""
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        inv_freq = self.base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float64, device=x.device)
                                 / self.head_dim)                                 # (d/2,)
        angles = positions.to(device=x.device, dtype=torch.float64).unsqueeze(-1) * inv_freq   # (..., n, d/2)
        if angles.dim() == 2:
            angles = angles.unsqueeze(0)
        cos, sin = (f(angles).to(dtype).unsqueeze(-2) for f in (torch.cos, torch.sin))  # (b or 1, n, 1, d/2)
        x1, x2 = x.to(dtype).chunk(2, dim=-1)
        return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1).to(x.dtype)


class DilatedMultiheadAttention(nn.Module):
    """Multi-head dilated attention over ``(batch, seq, embed_dim)``: projections, rotary, dilated attention.

    ``key_padding_mask`` ``(batch, seq)`` is True at padding (as in ``nn.MultiheadAttention``); ``positions`` are
    the absolute positions of the rows (default ``0..seq-1``; a sequence-parallel rank passes its global ones).
    ``process_group`` is None for one device; the sequence-parallel strategy sets it, the model never does.
    ``sliding_window`` > 0 adds a sliding-window branch (``dilated_attention``'s).
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        segment_lengths: Sequence[int],
        dilation_rates: Sequence[int],
        causal: bool = True,
        bias: bool = False,
        rotary_base: float = 10000.0,
        backend: str | None = None,
        sliding_window: int = 0,
    ) -> None:
        super().__init__()
        positive_integers("embed_dim", [embed_dim])
        positive_integers("num_heads", [num_heads])
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} is not divisible by num_heads {num_heads}")
        segment_lengths = positive_integers("segment_lengths", segment_lengths)
        dilation_rates = positive_integers("dilation_rates", dilation_rates)
        if len(segment_lengths) != len(dilation_rates) or not segment_lengths:
            raise ValueError(f"need one dilation rate per segment length, got {list(segment_lengths)} and "
                             f"{list(dilation_rates)}")
        # what dilated_attention would refuse at the first forward, refused here
        check_sliding_window(sliding_window, causal)
        if backend is not None and backend not in available_backends():
            raise ValueError(f"unknown attention backend {backend!r}; choose one of {available_backends()}")
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.segment_lengths, self.dilation_rates = tuple(segment_lengths), tuple(dilation_rates)
        self.causal, self.backend, self.sliding_window = causal, backend, sliding_window
        if sliding_window:
            # no cached-rows path for the sliding branch: callers that extend a cached prefix run whole sequences
            self.attend_rows = None
        self.process_group = None
        self.qkv = nn.Linear(embed_dim, 3 * embed_dim, bias=bias)
        self.out = nn.Linear(embed_dim, embed_dim, bias=bias)
        self.rotary = RotaryEmbedding(self.head_dim, rotary_base)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None = None, positions: Tensor | None = None) -> Tensor:
        embed_dim = self.num_heads * self.head_dim
        if x.dim() != 3 or x.shape[-1] != embed_dim:
            raise ValueError(f"x must be (batch, seq, embed_dim={embed_dim}), got shape {tuple(x.shape)}")
        b, n, _ = x.shape
        if positions is None:
            positions = torch.arange(n, device=x.device)
        elif positions.shape not in ((n,), (1, n), (b, n)):
            raise ValueError(f"positions must be ({n},) or ({b}, {n}), got shape {tuple(positions.shape)}")
        q, k, v = self.project(x, positions)
        return self.out(self.attend(q, k, v, key_padding_mask).reshape(b, n, -1))

    def project(self, x: Tensor, positions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """q, k, v ``(b, n, h, d)`` of ``x`` at ``positions`` ``(n,)`` or ``(b, n)``, q and k rotated."""
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).unbind(2)
        return self.rotary(q, positions), self.rotary(k, positions), v

    def attend(self, q: Tensor, k: Tensor, v: Tensor, key_padding_mask: Tensor | None) -> Tensor:
        return dilated_attention(q, k, v, self.segment_lengths, self.dilation_rates, causal=self.causal,
                                 group=self.process_group, key_padding_mask=key_padding_mask, backend=self.backend,
                                 sliding_window=self.sliding_window)

    def attend_rows(self, rows, starts: Tensor, lengths: Tensor, past, past_index: Tensor) -> Tensor:
        """Rows ``starts[b] ..`` of causal ``attend`` from their q, k, v and a cached prefix (``dilated_attention_rows``
        says how)."""
        return dilated_attention_rows(rows, starts, lengths, past, past_index, self.segment_lengths,
                                      self.dilation_rates)


def apply_sequence_parallel(module: nn.Module, group) -> int:
    """Hand ``group`` to every dilated attention layer of ``module`` (None: back to one device); returns how many
    layers took it."""
    layers = [m for m in module.modules() if isinstance(m, DilatedMultiheadAttention)]
    if group is not None and any(layer.sliding_window for layer in layers):
        raise ValueError("sequence parallelism does not support a sliding-window branch; set "
                         "model.backbone.sliding_window to 0")
    for layer in layers:
        layer.process_group = group
    return len(layers)
