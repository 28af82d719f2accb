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
import re
import zipfile
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
    return write_model_dir(model, info.to_dict(), out_dir)


def write_model_dir(module: torch.nn.Module, config: dict, out_dir: str | Path) -> Path:
    """`model.safetensors` (the module's weights; tied ones once) and `config.json` into out_dir (created), each
    written to a temporary name and renamed, so each appears whole or not at all. Every exported format uses it."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputFileError(f"{out}: exists and is not a folder; give a folder to write the model into")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where a parent folder should be, no permission
        raise InputFileError(f"{out}: cannot create the model folder ({err.strerror})") from None
    save_model(module, str(out / f".{WEIGHTS}.tmp"))  # handles the tied embedding / head weight
    os.replace(out / f".{WEIGHTS}.tmp", out / WEIGHTS)
    (out / f".{CONFIG}.tmp").write_text(json.dumps(config, indent=2) + "\n")
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
        config = json.loads((path / CONFIG).read_text())
        fine_tuned = str(config.get("format", "")) if isinstance(config, dict) else ""
        if fine_tuned.startswith(("genomenet-classifier", "genomenet-segmenter")):
            raise InputFileError(f"{path}: an exported fine-tuned model ({fine_tuned}), not a pre-trained language "
                                 f"model: warm-start from the backbone it was fine-tuned from, or apply it with "
                                 f"`genomenet classify` / `genomenet annotate`")
        info = PretrainedInfo.from_dict(config)
    except (ValueError, KeyError, TypeError) as err:
        raise InputFileError(f"{path / CONFIG}: not a genomenet model config ({err})") from None
    model = LongNet(info.backbone, causal=info.objective.kind == "causal")
    try:
        load_model(model, str(path / WEIGHTS), device=str(map_location))
    except Exception as err:  # not safetensors, or weights of another shape than config.json says
        raise InputFileError(f"{path / WEIGHTS}: not the weights of {path / CONFIG} ({_first_line(err)})") from None
    return model, info


LANGUAGE_MODELS = ("genomenet.training.module.GenomeLM", "genomenet.text.module.TextLM")


def language_model_settings(hparams: dict) -> dict:
    """A checkpoint's settings, flat (GenomeLM) or under init_args for a language model saved by its class_path
    (TextLM); a fine-tuned model's stay as they are (they describe no language model)."""
    return hparams["init_args"] if hparams.get("class_path") in LANGUAGE_MODELS else hparams


def _load_checkpoint(path: Path, map_location: str | torch.device) -> tuple[LongNet, PretrainedInfo]:
    ckpt = read_checkpoint(path, map_location)
    try:
        info = PretrainedInfo.from_dict(language_model_settings(ckpt["hyper_parameters"]))
    except (KeyError, TypeError, ValueError) as err:
        what = f"no {err.args[0]!r} entry" if isinstance(err, KeyError) else _first_line(err)
        raise not_a_model(path, f"its hyper_parameters describe no genomenet model: {what}") from None
    model = LongNet(info.backbone, causal=info.objective.kind == "causal")
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError as err:
        raise not_a_model(path, f"its weights do not fit its hyper_parameters: {_first_line(err)}") from None
    return model, info


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict:
    """A training checkpoint's dictionary (``torch.load(weights_only=True)``), or an ``InputFileError`` whose one
    line names the file and says why not (random bytes, text, a zip that is not a PyTorch file, pickled objects).

    ``mmap`` maps the tensors instead of reading them: a cheap check of a checkpoint that another loader reads next.
    """
    try:
        mmap = mmap and zipfile.is_zipfile(path)   # torch maps only its zip format
        ckpt = torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - torch raises anything from EOFError to RuntimeError here
        raise not_a_model(path, _why_not_loadable(Path(path), err)) from None
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt:
        raise not_a_model(path, "a PyTorch file without the state_dict of a checkpoint")
    return ckpt


def not_a_model(path: str | Path, reason: str) -> InputFileError:
    return InputFileError(f"{path}: not a genomenet checkpoint or exported model directory ({reason})")


def _why_not_loadable(path: Path, err: Exception) -> str:
    """A few words for why ``torch.load`` refused ``path`` (torch's own message runs over several lines)."""
    unpickled = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
    if unpickled:
        return f"it pickles {unpickled.group(1)}, which a weights-only load does not run"
    if isinstance(err, OSError):
        return err.strerror or _first_line(err)
    with path.open("rb") as f:
        head = f.read(4)
    if not head:
        return "an empty file"
    if head == b"PK\x03\x04":
        return "a zip archive that is not a readable PyTorch file"
    return "not a PyTorch file"


def _first_line(err: BaseException, limit: int = 160) -> str:
    line = next((s.strip() for s in str(err).splitlines() if s.strip()), type(err).__name__)
    return line if len(line) <= limit else line[: limit - 3] + "..."
