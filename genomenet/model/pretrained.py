"""Export trained weights to safetensors + JSON, and load them back without Lightning.

An exported model is a directory with `model.safetensors` (the backbone's weights) and `config.json`
(`backbone`: LongNetConfig fields, `objective`: ObjectiveConfig fields, `kmer_size`: bases per token,
`context_length`: the window in bases it was trained on, or null when unknown). A training
checkpoint holds the same three entries under `hyper_parameters` and the weights under `state_dict` with the prefix
`model.`; it is read with `torch.load(weights_only=True)`, so no pickled object is ever run.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_model, save_model

from genomenet.errors import InputFileError
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import ObjectiveConfig

FORMAT = "genomenet-lm/1"
WEIGHTS, CONFIG = "model.safetensors", "config.json"


@dataclass
class PretrainedInfo:
    """What a user of an exported model needs besides the weights."""

    backbone: LongNetConfig
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    kmer_size: int = 1
    context_length: int | None = None
    """Bases per training window: the window inference tiles a genome into by default (None: not recorded)."""
    alphabet: str = "dna"
    """What the token ids stand for: "dna" (k-mers of bases) or "bytes" (a text model, `genomenet.text`)."""

    def to_dict(self) -> dict:
        return {
            "format": FORMAT,
            "backbone": asdict(self.backbone),
            "objective": asdict(self.objective),
            "kmer_size": self.kmer_size,
            "context_length": self.context_length,
            "alphabet": self.alphabet,
        }

    @classmethod
    def from_dict(cls, d: dict) -> PretrainedInfo:
        return cls(
            LongNetConfig(**d["backbone"]),
            ObjectiveConfig(**d.get("objective", {})),
            d.get("kmer_size", 1),
            d.get("context_length"),
            d.get("alphabet") or _alphabet_of(d),
        )


def _alphabet_of(d: dict) -> str:
    """A checkpoint's hyper-parameters do not name the alphabet: one token per unit with 262 ids is bytes (256 and
    the specials); DNA with one base per token has 10."""
    one_per_token = d.get("kmer_size", 1) == 1
    return "bytes" if one_per_token and d["backbone"].get("vocab_size") == 262 else "dna"


def export_model(model: LongNet, info: PretrainedInfo, out_dir: str | Path) -> Path:
    """Write `model.safetensors` and `config.json` into out_dir (created); each file appears whole or not at all."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_model(model, str(out / f".{WEIGHTS}.tmp"))  # handles the tied embedding / head weight
    os.replace(out / f".{WEIGHTS}.tmp", out / WEIGHTS)
    (out / f".{CONFIG}.tmp").write_text(json.dumps(info.to_dict(), indent=2) + "\n")
    os.replace(out / f".{CONFIG}.tmp", out / CONFIG)
    return out


def export_checkpoint(checkpoint: str | Path, out_dir: str | Path) -> Path:
    """`genomenet export CHECKPOINT OUT_DIR`: a training checkpoint to an exported model directory."""
    model = load_pretrained(checkpoint)
    return export_model(model, model.info, out_dir)


def load_pretrained(path: str | Path, map_location: str | torch.device = "cpu") -> LongNet:
    """Rebuild the backbone from an exported directory or a training checkpoint, in eval mode. The result carries
    `.info` (PretrainedInfo: backbone config, objective, k-mer size)."""
    path = Path(path)
    if path.is_dir():
        model, info = _load_exported(path, map_location)
    elif path.is_file():
        model, info = _load_checkpoint(path, map_location)
    else:
        raise InputFileError(f"{path}: no such model directory or checkpoint file")
    model.info = info
    return model.eval()


def _load_exported(path: Path, map_location: str | torch.device) -> tuple[LongNet, PretrainedInfo]:
    for name in (CONFIG, WEIGHTS):
        if not (path / name).is_file():
            raise InputFileError(f"{path}: not an exported model directory ({name} is missing)")
    try:
        info = PretrainedInfo.from_dict(json.loads((path / CONFIG).read_text()))
    except (ValueError, KeyError, TypeError) as err:
        raise InputFileError(f"{path / CONFIG}: not a genomenet model config ({err})") from None
    model = LongNet(info.backbone, causal=info.objective.kind == "causal")
    load_model(model, str(path / WEIGHTS), device=str(map_location))
    return model, info


def _load_checkpoint(path: Path, map_location: str | torch.device) -> tuple[LongNet, PretrainedInfo]:
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
        info = PretrainedInfo.from_dict(ckpt["hyper_parameters"])
    except Exception as err:  # a truncated file, a foreign checkpoint, or one that needs unpickling
        raise InputFileError(f"{path}: not a genomenet checkpoint ({type(err).__name__}: {err})") from None
    model = LongNet(info.backbone, causal=info.objective.kind == "causal")
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model.load_state_dict(state)
    return model, info
