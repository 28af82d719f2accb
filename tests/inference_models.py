"""Small exported models with fresh random weights, for inference tests (no training needed)."""

from __future__ import annotations

from pathlib import Path

import torch

from genomenet.data.tokenizers import make_tokenizer
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.model.pretrained import PretrainedInfo, export_model


def tiny_model(out: Path, kind: str = "causal", k: int = 1, window: int = 192, seed: int | None = None,
               attention: str = "dilated", dropout: float = 0.0) -> Path:
    """Export a 2-layer LongNet (random weights, larger than default init so outputs vary) trained on nothing."""
    if seed is not None:
        torch.manual_seed(seed)
    cfg = LongNetConfig(vocab_size=make_tokenizer(k).vocab_size, n_layers=2, d_model=32, n_heads=2,
                        segment_lengths=[64, 256], dilation_rates=[1, 4], attention=attention, local_window=48,
                        dropout=dropout)
    model = LongNet(cfg, causal=kind == "causal")
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(4.0)  # sharper attention and predictions than the 0.02 init: differences show
    return export_model(model, PretrainedInfo(cfg, ObjectiveConfig(kind), k, window), out)
