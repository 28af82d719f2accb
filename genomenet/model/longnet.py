"""LongNet backbone: token embedding, pre-norm blocks of (dilated attention, feed-forward), final norm, LM head."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from genomenet.attention.module import DilatedMultiheadAttention
from genomenet.errors import ConfigError
from genomenet.model.dense import DenseMultiheadAttention
from genomenet.model.local import LocalMultiheadAttention
from genomenet.model.strided import StridedMultiheadAttention, default_stride


@dataclass
class LongNetConfig:
    """Shape of the backbone. Every field is plain data, so the config round-trips through JSON and YAML."""

    vocab_size: int | None = None
    """Number of token ids; None takes it from the tokenizer that the data config implies."""
    n_layers: int = 4
    """Number of transformer blocks."""
    d_model: int = 128
    """Width of the residual stream."""
    n_heads: int = 4
    """Attention heads per block; d_model / n_heads must be even (rotary rotates pairs)."""
    ffn_multiplier: float = 4.0
    """Feed-forward hidden width as a multiple of d_model (SwiGLU uses 2/3 of it, as in LLaMA)."""
    feed_forward: Literal["swiglu", "gelu"] = "swiglu"
    """Feed-forward type."""
    norm: Literal["rmsnorm", "layernorm"] = "rmsnorm"
    """Normalisation before each sub-layer and at the end."""
    attention: Literal["dilated", "dense", "local", "strided"] = "dilated"
    """Dilated attention (LongNet), dense softmax attention over the whole sequence, sliding-window local attention
    over `local_window` keys, or Sparse Transformer's strided attention (`stride`): the two fixed sparse baselines."""
    segment_lengths: list[int] = field(default_factory=lambda: [256, 512, 1024])
    """Dilated attention: segment length w of each branch (one branch per (w, r) pair)."""
    dilation_rates: list[int] = field(default_factory=lambda: [1, 2, 4])
    """Dilated attention: keep every r-th position of a segment; head h starts at offset h % r."""
    sliding_window: int = 0
    """Dilated attention: one more branch, a sliding window: each query also attends to itself and the
    `sliding_window` positions before it (causal models only; 0 = off). The shortest segment branch is block-local,
    so a position early in its segment sees few neighbours; this gives every position its near past."""
    local_window: int | None = None
    """Local attention: keys each query sees (itself and the ones before it when causal); default the shortest
    segment length."""
    stride: int | None = None
    """Strided attention: each query sees its `stride` nearest keys and every `stride`-th key beyond them; default
    the square root of the longest segment length, rounded (Sparse Transformer's choice)."""
    rotary_base: float = 10000.0
    """Base of the rotary position encoding."""
    dropout: float = 0.0
    """Dropout on the residual branches and the embedding."""
    bias: bool = False
    """Bias terms in the linear layers."""
    tie_embeddings: bool = True
    """Share the token embedding with the LM head."""
    gradient_checkpointing: bool = False
    """Recompute each block in the backward pass: less memory, about a third more compute."""

    def __post_init__(self) -> None:
        check_config(self)

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    def to_dict(self) -> dict:
        return asdict(self)


def check_config(cfg: LongNetConfig) -> None:
    """Raise ConfigError naming the field for shapes the backbone cannot build."""
    if len(cfg.segment_lengths) != len(cfg.dilation_rates):
        raise ConfigError(
            f"model segment_lengths has {len(cfg.segment_lengths)} entries but dilation_rates has "
            f"{len(cfg.dilation_rates)}: give one dilation rate per segment length"
        )
    if not cfg.segment_lengths or min(cfg.segment_lengths) < 1 or min(cfg.dilation_rates) < 1:
        raise ConfigError("model segment_lengths and dilation_rates must be non-empty lists of positive integers")
    for name in ("n_layers", "d_model", "n_heads"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"model {name}={getattr(cfg, name)} must be a positive integer")
    if cfg.d_model % cfg.n_heads or (cfg.d_model // cfg.n_heads) % 2:
        raise ConfigError(f"model d_model={cfg.d_model} must split into n_heads={cfg.n_heads} heads of even width")
    if cfg.sliding_window < 0:
        raise ConfigError(f"model sliding_window={cfg.sliding_window} must be 0 (off) or a positive integer")
    if cfg.local_window is not None and cfg.local_window < 1:
        raise ConfigError(f"model local_window={cfg.local_window} must be a positive integer")
    if cfg.stride is not None and cfg.stride < 1:
        raise ConfigError(f"model stride={cfg.stride} must be a positive integer")
    if cfg.vocab_size is not None and cfg.vocab_size < 2:
        raise ConfigError(f"model vocab_size={cfg.vocab_size} must be at least 2")


def norm_layer(cfg: LongNetConfig) -> nn.Module:
    return nn.RMSNorm(cfg.d_model) if cfg.norm == "rmsnorm" else nn.LayerNorm(cfg.d_model)


def attention_layer(cfg: LongNetConfig, causal: bool) -> nn.Module:
    """The attention of one block: dilated (from genomenet.attention), dense, local or strided, with one forward
    signature."""
    if cfg.attention == "dense":
        return DenseMultiheadAttention(cfg.d_model, cfg.n_heads, causal, cfg.bias, cfg.rotary_base)
    if cfg.attention == "local":
        window = cfg.local_window or min(cfg.segment_lengths)
        return LocalMultiheadAttention(cfg.d_model, cfg.n_heads, window, causal, cfg.bias, cfg.rotary_base)
    if cfg.attention == "strided":
        stride = cfg.stride or default_stride(cfg.segment_lengths)
        return StridedMultiheadAttention(cfg.d_model, cfg.n_heads, stride, causal, cfg.bias, cfg.rotary_base)
    if cfg.sliding_window and not causal:
        raise ConfigError(f"model sliding_window={cfg.sliding_window} needs a causal model (it adds the positions "
                          "before each query); set it to 0 for a masked objective")
    return DilatedMultiheadAttention(
        cfg.d_model,
        cfg.n_heads,
        cfg.segment_lengths,
        cfg.dilation_rates,
        causal=causal,
        bias=cfg.bias,
        rotary_base=cfg.rotary_base,
        sliding_window=cfg.sliding_window,
    )


class FeedForward(nn.Module):
    """SwiGLU (gate * silu(up)) or a GELU MLP."""

    def __init__(self, cfg: LongNetConfig) -> None:
        super().__init__()
        hidden = int(cfg.ffn_multiplier * cfg.d_model)
        self.swiglu = cfg.feed_forward == "swiglu"
        if self.swiglu:
            hidden = 8 * ((2 * hidden // 3 + 7) // 8)
            self.gate = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.up = nn.Linear(cfg.d_model, hidden, bias=cfg.bias)
        self.down = nn.Linear(hidden, cfg.d_model, bias=cfg.bias)

    def forward(self, x: Tensor) -> Tensor:
        h = F.silu(self.gate(x)) * self.up(x) if self.swiglu else F.gelu(self.up(x))
        return self.down(h)


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, cfg: LongNetConfig, causal: bool) -> None:
        super().__init__()
        self.norm1, self.attn = norm_layer(cfg), attention_layer(cfg, causal)
        self.norm2, self.ffn = norm_layer(cfg), FeedForward(cfg)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: Tensor, key_padding_mask: Tensor | None, positions: Tensor | None) -> Tensor:
        x = x + self.dropout(self.attn(self.norm1(x), key_padding_mask=key_padding_mask, positions=positions))
        return x + self.dropout(self.ffn(self.norm2(x)))

    def prefill(self, x: Tensor, key_padding_mask: Tensor | None) -> tuple[Tensor, Projections]:
        """``forward`` at positions 0..n-1, also returning the block's q, k, v (rotated): what ``extend`` continues
        from."""
        b, n, _ = x.shape
        q, k, v = self.attn.project(self.norm1(x), torch.arange(n, device=x.device))
        x = x + self.attn.out(self.attn.attend(q, k, v, key_padding_mask).reshape(b, n, -1))
        return x + self.ffn(self.norm2(x)), (q, k, v)

    def extend(self, x: Tensor, starts: Tensor, lengths: Tensor, past: Projections, past_index: Tensor) -> Tensor:
        """Rows ``x`` ``(b, s, d)`` at positions ``starts[b] + 0..s-1`` of causal sequences whose earlier positions
        are those of ``past[past_index[b]]`` (q, k, v ``(t, n, h, d)`` that ``prefill`` returned)."""
        b, s, _ = x.shape
        positions = starts[:, None] + torch.arange(s, device=x.device)
        rows = self.attn.project(self.norm1(x), positions)
        x = x + self.attn.out(self.attn.attend_rows(rows, starts, lengths, past, past_index).reshape(b, s, -1))
        return x + self.ffn(self.norm2(x))


Projections = tuple[Tensor, Tensor, Tensor]


class LongNet(nn.Module):
    """Token ids (b, n) -> logits (b, n, vocab). `causal` picks the objective's attention: causal or bidirectional."""

    def __init__(self, cfg: LongNetConfig, causal: bool = True) -> None:
        super().__init__()
        if cfg.vocab_size is None:
            raise ConfigError("model vocab_size is not set: give it, or let the tokenizer set it")
        self.cfg, self.causal = cfg, causal
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg, causal) for _ in range(cfg.n_layers))
        self.norm = norm_layer(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.apply(init_weights)
        for name, p in self.named_parameters():  # GPT-2: scale the residual projections by depth
            if name.endswith(("out.weight", "down.weight")):
                nn.init.normal_(p, std=0.02 / (2 * cfg.n_layers) ** 0.5)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight

    def hidden_states(
        self,
        input_ids: Tensor,
        key_padding_mask: Tensor | None = None,
        positions: Tensor | None = None,
        layer: int | None = None,
    ) -> Tensor:
        """Hidden states (b, n, d_model): what embeddings and downstream heads read.

        layer None (or n_layers, or -1): after the final norm. layer L in 0..n_layers-1: the residual stream after L
        blocks (0: the token embeddings), without running the blocks above it.
        """
        last = self.cfg.n_layers
        layer = last if layer is None or layer == -1 else layer
        if not 0 <= layer <= last:
            raise ValueError(f"layer must be in 0..{last} (or -1 for the last), got {layer}")
        x = self.drop(self.embed(input_ids))  # (b, n, d)
        for block in self.blocks[:layer]:
            if self.cfg.gradient_checkpointing and self.training:
                x = checkpoint(block, x, key_padding_mask, positions, use_reentrant=False)
            else:
                x = block(x, key_padding_mask, positions)
        return self.norm(x) if layer == last else x

    def forward(
        self, input_ids: Tensor, key_padding_mask: Tensor | None = None, positions: Tensor | None = None
    ) -> Tensor:
        """Logits (b, n, vocab). key_padding_mask: True = padding; positions: absolute positions (n,) for rotary."""
        return self.lm_head(self.hidden_states(input_ids, key_padding_mask, positions))

    def prefill(self, input_ids: Tensor, key_padding_mask: Tensor | None = None) -> tuple[Tensor, list[Projections]]:
        """Hidden states (b, n, d_model) after the final norm, as ``hidden_states``, and every block's q, k, v: the
        cache from which ``extend`` computes a sequence that shares this one's beginning."""
        x, cache = self.drop(self.embed(input_ids)), []
        for block in self.blocks:
            x, projections = block.prefill(x, key_padding_mask)
            cache.append(projections)
        return self.norm(x), cache

    def extend(self, input_ids: Tensor, starts: Tensor, lengths: Tensor, cache: list[Projections],
               cache_index: Tensor) -> Tensor:
        """Hidden states (b, s, d_model) of tokens ``input_ids`` (b, s) at positions ``starts[b] + 0..s-1``, for
        sequences whose positions before ``starts[b]`` are those of sequence ``cache_index[b]`` of a ``prefill``
        (``cache``); rows at or past ``lengths[b]`` are padding. Causal models only: a causal position sees nothing
        after it, so these rows equal the rows of the whole sequence, at a fraction of its cost."""
        if not self.can_extend:
            raise ValueError("extend needs a causal model (a bidirectional position sees the ones after it) whose "
                             f"attention has a cached-rows path ({self.cfg.attention} has "
                             f"{'none' if self.causal else 'one'})")
        x = self.drop(self.embed(input_ids))
        for block, past in zip(self.blocks, cache, strict=True):
            x = block.extend(x, starts, lengths, past, cache_index)
        return self.norm(x)

    @property
    def can_extend(self) -> bool:
        """Whether ``extend`` works for this model (causal, and every block's attention has a cached-rows path)."""
        return self.causal and all(getattr(b.attn, "attend_rows", None) is not None for b in self.blocks)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def init_weights(module: nn.Module) -> None:
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, std=0.02)
