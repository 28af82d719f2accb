"""Heads on the LongNet backbone: pooling a window's hidden states into one vector, and a classifier over it.

What a pooled vector reads depends on the backbone's attention. Bidirectional (masked-LM) backbones: every position has
seen the whole window, so `mean` averages whole-window views. Causal backbones: position i has seen only the window up
to i, so `mean` averages prefixes (the early positions know little) and `last` reads the last real token, the only one
that has seen the whole window; `attention` learns which positions to read.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from genomenet.model.longnet import LongNet

Pooling = Literal["mean", "attention", "last"]


class Pool(nn.Module):
    """Hidden states (b, n, d) and a mask of real tokens (b, n) -> one vector per window (b, d)."""

    def __init__(self, d_model: int, kind: Pooling = "mean") -> None:
        super().__init__()
        if kind not in ("mean", "attention", "last"):
            raise ValueError(f"pooling must be mean, attention or last, got {kind!r}")
        self.kind = kind
        self.score = nn.Linear(d_model, 1) if kind == "attention" else None

    def forward(self, hidden: Tensor, real: Tensor) -> Tensor:
        if self.kind == "last":
            last = real.long().cumsum(1).argmax(1)                                       # (b,) last real token
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        if self.kind == "attention":
            scores = self.score(hidden).squeeze(-1).masked_fill(~real, float("-inf"))  # (b, n)
            return (scores.softmax(-1).unsqueeze(-1) * hidden).sum(1)
        weights = real.to(hidden.dtype).unsqueeze(-1)                                   # (b, n, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)


class RegionClassifierNet(nn.Module):
    """Token windows (b, n) -> class logits (b, outputs): backbone hidden states, pooled, then a linear head."""

    def __init__(self, backbone: LongNet, num_outputs: int, pooling: Pooling = "mean", pad_id: int = -1,
                 dropout: float = 0.0) -> None:
        super().__init__()
        self.backbone, self.pad_id = backbone, pad_id
        self.pool = Pool(backbone.cfg.d_model, pooling)
        self.drop = nn.Dropout(dropout)
        self.set_outputs(num_outputs)

    def set_outputs(self, num_outputs: int) -> None:
        """A fresh linear head with this many logits."""
        self.head = nn.Linear(self.backbone.cfg.d_model, num_outputs)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def features(self, input_ids: Tensor) -> Tensor:
        """Pooled vectors (b, d_model) of windows right-padded with pad_id."""
        real = input_ids != self.pad_id
        padding = None if bool(real.all()) else ~real
        hidden = self.backbone.hidden_states(input_ids, key_padding_mask=padding)  # (b, n, d)
        return self.pool(hidden, real)

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.head(self.drop(self.features(input_ids)))


def probabilities(logits: Tensor, kind: str) -> Tensor:
    """Class probabilities (b, classes): binary gives [1 - p, p]; multi-class a softmax; multi-label sigmoids."""
    if kind == "binary":
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], dim=1)
    return logits.softmax(-1) if kind == "multiclass" else torch.sigmoid(logits)
