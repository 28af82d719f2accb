"""Export a fine-tuned region classifier to safetensors + JSON, and load it back without Lightning.

An exported classifier is a directory with `model.safetensors` (backbone, pooling and head weights) and `config.json`:
`format` `genomenet-classifier/1`, `backbone` (LongNetConfig fields), `causal`, `kmer_size`, `pooling`, `labels`
(`kind`: binary | multiclass | multilabel, `classes`), `window` (`length`, `mode`, `flank`, `frames`: what each region
is read as; `frames` written only when `all`: absent means one), `pool_over` (window | region) and `strands` (one |
both; absent in older exports: window, one).
A training checkpoint of the classifier holds the same under its `genomenet_classifier` key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_model

from genomenet.errors import InputFileError
from genomenet.model.heads import RegionClassifierNet
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.pretrained import CONFIG, WEIGHTS, write_model_dir

FORMAT = "genomenet-classifier/1"
CHECKPOINT_KEY = "genomenet_classifier"
OPTIONAL_STATE = {"feature_mean", "feature_scale"}
"""Absent from classifiers exported before the head read standardised features: they keep the identity."""


@dataclass
class ClassifierInfo:
    """What applying a classifier to new regions needs besides the weights."""

    backbone: LongNetConfig
    causal: bool
    kmer_size: int
    pooling: str
    labels: dict
    """{"kind": binary | multiclass | multilabel, "classes": [...]}"""
    window: dict
    """{"length": bases, "mode": centered | region, "flank": bases, "frames": "all" (absent: one)}"""
    pool_over: str = "window"
    strands: str = "one"

    def to_dict(self) -> dict:
        return {"format": FORMAT, **asdict(self), "backbone": asdict(self.backbone)}

    @classmethod
    def from_dict(cls, d: dict) -> ClassifierInfo:
        if d.get("format") != FORMAT:
            raise ValueError(f"format is {d.get('format')!r}, not {FORMAT!r}")
        return cls(LongNetConfig(**d["backbone"]), d["causal"], d["kmer_size"], d["pooling"], d["labels"], d["window"],
                   d.get("pool_over", "window"), d.get("strands", "one"))


def build_classifier(info: ClassifierInfo, tokenizer) -> RegionClassifierNet:
    """The classifier's modules for `info`; `tokenizer` (of info.kmer_size) gives the pad and reverse-complement ids."""
    outputs = 1 if info.labels["kind"] == "binary" else len(info.labels["classes"])
    return RegionClassifierNet(LongNet(info.backbone, causal=info.causal), outputs, info.pooling, tokenizer.pad_id,
                               pool_over=info.pool_over, strands=info.strands,
                               reverse_complement_ids=tokenizer.reverse_complement_ids)


def export_classifier(net: RegionClassifierNet, info: ClassifierInfo, out_dir: str | Path) -> Path:
    """Write model.safetensors and config.json into out_dir; each file appears whole or not at all."""
    return write_model_dir(net, info.to_dict(), out_dir)


def load_classifier(path: str | Path, tokenizer_for, map_location: str = "cpu") -> RegionClassifierNet:
    """An exported classifier directory or a fine-tuning checkpoint, in eval mode, carrying `.info`.
    `tokenizer_for(kmer_size)` gives the tokenizer (the model package does not know tokenizers)."""
    path = Path(path)
    try:
        if path.is_dir():
            info = ClassifierInfo.from_dict(json.loads((path / CONFIG).read_text()))
            state = None
        elif path.is_file():
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
            info = ClassifierInfo.from_dict(ckpt[CHECKPOINT_KEY])
            state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        else:
            raise InputFileError(f"{path}: no such classifier directory or checkpoint file")
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as err:
        raise InputFileError(f"{path}: not a genomenet region classifier ({type(err).__name__}: {err})") from None
    net = build_classifier(info, tokenizer_for(info.kmer_size))
    if state is None:
        missing, unexpected = load_model(net, str(path / WEIGHTS), strict=False, device=map_location)
    else:
        missing, unexpected = net.load_state_dict(state, strict=False)
    if unexpected or set(missing) - OPTIONAL_STATE:
        raise InputFileError(f"{path}: weights do not match its config (missing {sorted(missing)[:3]}, "
                             f"unexpected {sorted(unexpected)[:3]})")
    net.info = info
    return net.eval()
