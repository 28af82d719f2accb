"""Heads on the LongNet backbone: pooling a window's hidden states into one vector, and a classifier over it.

What a pooled vector reads depends on the backbone's attention. Bidirectional (masked-LM) backbones: every position has
seen the whole window, so `mean` averages whole-window views. Causal backbones: position i has seen only the window up
to i, so `mean` averages prefixes (the early positions know little) and `last` reads the last real token, the only one
that has seen the whole window; `attention` learns which positions to read.

Where: `pool_over="window"` pools every real token; `"region"` only the tokens that hold the labelled region's bases
(a batch's `region` spans), so a short element in a long window (a splice site, a TSS) is read where it sits, with
the window as its context. Strands: with `strands="both"` the window is also read as its reverse complement and each
position's vector is [forward state, reverse-complement state of the same base]: a causal backbone's forward state
has seen the window up to the base, the reverse one the window from the base on, so together they see both sides
(`last` then reads the forward pass's last token and the reverse pass's last, each having seen the whole window).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from genomenet.model.longnet import LongNet

Pooling = Literal["mean", "attention", "last"]
PoolOver = Literal["window", "region"]
Strands = Literal["one", "both"]


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
            return hidden[torch.arange(hidden.shape[0], device=hidden.device), last_real(real)]
        if self.kind == "attention":
            scores = self.score(hidden).squeeze(-1).masked_fill(~real, float("-inf"))  # (b, n)
            return (scores.softmax(-1).unsqueeze(-1) * hidden).sum(1)
        weights = real.to(hidden.dtype).unsqueeze(-1)                                   # (b, n, 1)
        return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1)


def last_real(real: Tensor) -> Tensor:
    """(b,) index of each row's last real token (rows are right-padded)."""
    return real.long().cumsum(1).argmax(1)


def region_mask(spans: Tensor, real: Tensor) -> Tensor:
    """(b, n) True on the real tokens inside each row's [first, end) token span (spans (b, 2))."""
    pos = torch.arange(real.shape[1], device=real.device)
    return (pos >= spans[:, :1]) & (pos < spans[:, 1:]) & real


def reverse_real(ids: Tensor, real: Tensor) -> Tensor:
    """(b, n) source index that reverses each row's real tokens in place (pads stay after them); it is its own
    inverse, so it also maps states of the reversed row back onto the forward positions."""
    length = real.sum(1, keepdim=True)
    pos = torch.arange(ids.shape[1], device=ids.device).expand_as(ids)
    return torch.where(pos < length, length - 1 - pos, pos)


def both_strand_states(backbone: LongNet, input_ids: Tensor, real: Tensor, rc_ids: Tensor) -> Tensor:
    """(b, n, 2d): each token's state in the window and in the window's reverse complement (rc_ids: the
    reverse-complement id of every token id), aligned on the forward positions; each row's real tokens are reversed
    in place, so padding stays after them."""
    source = reverse_real(input_ids, real)
    padding = None if bool(real.all()) else ~real
    forward = backbone.hidden_states(input_ids, key_padding_mask=padding)
    reverse = backbone.hidden_states(rc_ids[input_ids.gather(1, source)], key_padding_mask=padding)
    return torch.cat([forward, reverse.gather(1, source.unsqueeze(-1).expand_as(reverse))], -1)


class RegionClassifierNet(nn.Module):
    """Token windows (b, n), or (b, frames, n), -> class logits (b, outputs): backbone hidden states, pooled
    (averaged over frames), then a linear head."""

    def __init__(self, backbone: LongNet, num_outputs: int, pooling: Pooling = "mean", pad_id: int = -1,
                 dropout: float = 0.0, pool_over: PoolOver = "window", strands: Strands = "one",
                 reverse_complement_ids: Tensor | None = None) -> None:
        """`reverse_complement_ids` (vocab,): the tokenizer's reverse-complement id of every token id; needed for
        strands="both" (the model package knows no tokenizer)."""
        super().__init__()
        if pool_over not in ("window", "region") or strands not in ("one", "both"):
            raise ValueError(f"pool_over must be window or region ({pool_over!r}), strands one or both ({strands!r})")
        if strands == "both" and reverse_complement_ids is None:
            raise ValueError("strands='both' needs the tokenizer's reverse_complement_ids")
        self.backbone, self.pad_id, self.pool_over, self.strands = backbone, pad_id, pool_over, strands
        table = torch.as_tensor(reverse_complement_ids if reverse_complement_ids is not None else [], dtype=torch.long)
        self.register_buffer("rc_ids", table, persistent=False)
        self.width = backbone.cfg.d_model * (2 if strands == "both" else 1)
        self.pool = Pool(self.width, pooling)
        # the head reads (pooled - feature_mean) / feature_scale: the identity unless a probe set them, and dropout
        # then drops a feature to its mean, not to zero
        self.register_buffer("feature_mean", torch.zeros(self.width))
        self.register_buffer("feature_scale", torch.ones(self.width))
        self.drop = nn.Dropout(dropout)
        self.set_outputs(num_outputs)

    def set_outputs(self, num_outputs: int) -> None:
        """A fresh linear head with this many logits."""
        self.head = nn.Linear(self.width, num_outputs)
        nn.init.normal_(self.head.weight, std=0.02)
        nn.init.zeros_(self.head.bias)

    def _states(self, input_ids: Tensor, real: Tensor) -> Tensor:
        padding = None if bool(real.all()) else ~real
        return self.backbone.hidden_states(input_ids, key_padding_mask=padding)  # (b, n, d)

    def features(self, input_ids: Tensor, spans: Tensor | None = None) -> Tensor:
        """Pooled vectors (b, width) of windows right-padded with pad_id; `spans` (b, 2): the region's token span,
        needed when pool_over="region". Windows given in several k-mer frames (b, frames, n) get the mean of their
        frames' pooled vectors (the head is linear, so its logits are the mean of the frames' logits too)."""
        if input_ids.dim() == 3:  # spans (b, frames, 2): each frame's own
            b, frames, n = input_ids.shape
            per_frame = None if spans is None else spans.reshape(b * frames, 2)
            return self.features(input_ids.reshape(b * frames, n), per_frame).view(b, frames, -1).mean(1)
        real = input_ids != self.pad_id
        if self.strands == "one":
            hidden = self._states(input_ids, real)
        elif self.pool.kind == "last":  # each pass's last token has seen the whole window
            hidden = both_strand_states(self.backbone, input_ids, real, self.rc_ids)
            rows, last, d = torch.arange(len(real), device=real.device), last_real(real), self.backbone.cfg.d_model
            return torch.cat([hidden[rows, last, :d], hidden[rows, 0, d:]], -1)
        else:
            hidden = both_strand_states(self.backbone, input_ids, real, self.rc_ids)
        if self.pool_over == "region":
            if spans is None:
                raise ValueError("pool_over='region' needs the regions' token spans")
            real = region_mask(spans, real)
        return self.pool(hidden, real)

    def forward(self, input_ids: Tensor, spans: Tensor | None = None) -> Tensor:
        standardised = (self.features(input_ids, spans) - self.feature_mean) / self.feature_scale
        return self.head(self.drop(standardised))


def probabilities(logits: Tensor, kind: str) -> Tensor:
    """Class probabilities (b, classes): binary gives [1 - p, p]; multi-class a softmax; multi-label sigmoids."""
    if kind == "binary":
        p = torch.sigmoid(logits[:, 0])
        return torch.stack([1 - p, p], dim=1)
    return logits.softmax(-1) if kind == "multiclass" else torch.sigmoid(logits)
