"""`ConvSegmenter`: the convolutional baseline of per-base segmentation. One-hot bases go through a stack of dilated
residual 1-D convolutions whose receptive field is chosen to match a LongNet's shortest attention segment, so the
comparison asks what attention beyond a convolution's reach adds.

Tokens come in as the LongNet reads them; `token_bases` (vocab, k) turns each token back into its k base codes
(A0 C1 G2 T3, 4 for N, padding and other specials, which become all-zero one-hot columns).
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

STEM_KERNEL = 9


def dilation_schedule(receptive_field: int, kernel: int = 3, first: int = STEM_KERNEL) -> list[int]:
    """Dilations 1, 2, 4, ... of the residual blocks after a stem of width `first`, the last one shortened so the
    stack's receptive field (`first + sum((kernel - 1) * d)`) just reaches `receptive_field`."""
    dilations, reach = [], first
    while reach < receptive_field:
        d = min(2 ** len(dilations), math.ceil((receptive_field - reach) / (kernel - 1)))
        dilations.append(d)
        reach += (kernel - 1) * d
    return dilations


def one_hot_bases(codes: Tensor) -> Tensor:
    """Base codes (b, L), A0 C1 G2 T3 and 4 for N or padding -> (b, 4, L) floats, N all zero."""
    return F.one_hot(codes, 5)[..., :4].transpose(1, 2).float()


class ResidualConv(nn.Module):
    """x + W2 gelu(dilated conv(norm(x))), normalised per position (no statistics across the window)."""

    def __init__(self, channels: int, dilation: int, kernel: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.conv = nn.Conv1d(channels, channels, kernel, dilation=dilation, padding=dilation * (kernel // 2))
        self.mix = nn.Conv1d(channels, channels, 1)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:                                  # (b, channels, L)
        h = self.norm(x.transpose(1, 2)).transpose(1, 2)
        return x + self.drop(self.mix(F.gelu(self.conv(h))))


class ConvSegmenter(nn.Module):
    """Token windows (b, n) -> per-base logits (b, n * k, classes) from one-hot bases."""

    def __init__(self, num_classes: int, token_bases: Tensor, receptive_field: int, channels: int = 64,
                 kernel: int = 3, dropout: float = 0.0) -> None:
        super().__init__()
        if kernel % 2 == 0:
            raise ValueError(f"kernel must be odd (centred), got {kernel}")
        self.register_buffer("token_bases", token_bases.long(), persistent=False)   # (vocab, k)
        self.stem = nn.Conv1d(4, channels, STEM_KERNEL, padding=STEM_KERNEL // 2)
        dilations = dilation_schedule(receptive_field, kernel)
        self.blocks = nn.ModuleList(ResidualConv(channels, d, kernel, dropout) for d in dilations)
        self.out = nn.Conv1d(channels, num_classes, 1)
        self.receptive_field = STEM_KERNEL + sum((kernel - 1) * d for d in dilations)
        """Bases each logit reads (centred on its base)."""

    def forward(self, input_ids: Tensor) -> Tensor:
        x = self.stem(one_hot_bases(self.token_bases[input_ids].flatten(1)))   # (b, channels, L)
        for block in self.blocks:
            x = block(x)
        return self.out(x).transpose(1, 2)                                   # (b, L, classes)
