"""Per-base segmentation: a LongNet backbone, then a per-base head of multi-label logits (exon, intron, CDS, ...).

Each base needs context on both sides. A bidirectional (masked-LM) backbone has it in one pass. A causal backbone is
run twice, `strands: both`: over the window and over its reverse complement, and each base's head reads the two
states side by side: the forward one has seen everything to its left, the reverse one everything to its right, and
the pre-trained causal features are used as they were trained. k-mer tokens are up-sampled to bases by the head,
which gives k logits per class from each token's state, or (`base_channels` > 0) k feature vectors that are added to
the window's one-hot bases and refined by two convolutions at base resolution: a 4-mer token's state blurs where in it
a 2-base splice site lies, the bases themselves do not.

An exported segmenter is a directory with `model.safetensors` and `config.json` (`format` `genomenet-segmenter/1`,
`backbone`, `causal`, `kmer_size`, `classes`, `head`, `strands`, `context_length`); a training checkpoint holds the
same under its `genomenet_segmenter` key. `load_segmenter` reads either without Lightning.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import torch
from safetensors.torch import load_model
from torch import Tensor, nn
from torch.nn import functional as F  # noqa: N812 - the usual name

from genomenet.errors import InputFileError
from genomenet.model.conv_segmenter import one_hot_bases
from genomenet.model.heads import both_strand_states
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.pretrained import CONFIG, WEIGHTS, read_checkpoint, write_model_dir
from genomenet.model.unet import UNet1d

FORMAT = "genomenet-segmenter/1"
CHECKPOINT_KEY = "genomenet_segmenter"
HeadKind = Literal["linear", "conv", "unet"]
Strands = Literal["forward", "both"]


class SegmentationHead(nn.Module):
    """States (b, n_tokens, d_in) -> per-base logits (b, n_tokens * k, classes).

    `linear`: one linear map per token. `conv`: two 1-D convolutions over the tokens (GELU, residual), then the linear
    map: a small decoder that smooths calls over neighbouring tokens. `unet`: a 1-D U-Net (`genomenet.model.unet`,
    `levels` coarser resolutions, each `pool` times coarser) then the linear map: the decoder of the published
    segmentation models, whose calls read kilobases around each token.

    `base_channels` > 0 up-samples before the class map instead: each token gives k vectors of `base_channels`, one
    per base, the one-hot bases are added (a convolution of `base_kernel` bases), two residual convolutions of
    `base_kernel` bases mix them, and one linear map per base gives the logits; `forward` then needs the bases.
    """

    def __init__(self, d_in: int, num_classes: int, kmer_size: int = 1, kind: HeadKind = "conv",
                 hidden: int = 128, kernel: int = 9, dropout: float = 0.0, levels: int = 5, pool: int = 4,
                 base_channels: int = 0, base_kernel: int = 15) -> None:
        super().__init__()
        if kernel % 2 == 0 or base_kernel % 2 == 0:
            raise ValueError(f"head kernels must be odd (centred), got {kernel} and {base_kernel}")
        if base_channels < 0:
            raise ValueError(f"base_channels must be >= 0, got {base_channels}")
        self.kind, self.k, self.num_classes, self.base_channels = kind, kmer_size, num_classes, base_channels
        self.drop = nn.Dropout(dropout)
        if kind == "conv":
            self.inp = nn.Linear(d_in, hidden)
            self.convs = nn.ModuleList(nn.Conv1d(hidden, hidden, kernel, padding=kernel // 2) for _ in range(2))
            d_in = hidden
        elif kind == "unet":
            self.inp = nn.Linear(d_in, hidden)
            self.unet = UNet1d(hidden, kernel, levels, pool)
            d_in = hidden
        elif kind != "linear":
            raise ValueError(f"head must be linear, conv or unet, got {kind!r}")
        if base_channels:
            self.up = nn.Linear(d_in, base_channels * kmer_size)
            self.base_in = nn.Conv1d(4, base_channels, base_kernel, padding=base_kernel // 2)
            self.base_convs = nn.ModuleList(nn.Conv1d(base_channels, base_channels, base_kernel,
                                                      padding=base_kernel // 2) for _ in range(2))
            self.out = nn.Linear(base_channels, num_classes)
        else:
            self.out = nn.Linear(d_in, num_classes * kmer_size)
        nn.init.normal_(self.out.weight, std=0.02)
        nn.init.zeros_(self.out.bias)

    def forward(self, states: Tensor, bases: Tensor | None = None) -> Tensor:
        """states (b, n, d_in); bases (b, n * k) codes A0 C1 G2 T3, 4 for N or padding (needed with base_channels)."""
        x = self.drop(states)
        if self.kind == "conv":
            x = self.inp(x)
            for conv in self.convs:
                x = x + nn.functional.gelu(conv(x.transpose(1, 2)).transpose(1, 2))
        elif self.kind == "unet":
            x = self.unet(self.inp(x))
        b, n, _ = x.shape
        if not self.base_channels:
            return self.out(x).view(b, n * self.k, self.num_classes)
        if bases is None or bases.shape != (b, n * self.k):
            raise ValueError(f"a head with base_channels needs the window's bases, shape {(b, n * self.k)}")
        x = self.up(x).view(b, n * self.k, self.base_channels).transpose(1, 2)      # (b, channels, bases)
        x = x + self.base_in(one_hot_bases(bases).to(x.dtype))
        for conv in self.base_convs:
            x = x + F.gelu(conv(x))
        return self.out(x.transpose(1, 2))


class SegmenterNet(nn.Module):
    """Token windows (b, n) -> per-base logits (b, n * k, classes)."""

    def __init__(self, backbone: LongNet, num_classes: int, kmer_size: int = 1, head: HeadKind = "conv",
                 strands: Strands = "both", rc_ids: Tensor | None = None, pad_id: int = -1, head_hidden: int = 128,
                 head_kernel: int = 9, dropout: float = 0.0, head_levels: int = 5, head_pool: int = 4,
                 head_base_channels: int = 0, head_base_kernel: int = 15, token_bases: Tensor | None = None) -> None:
        """token_bases (vocab, k): every token id's base codes (A0 C1 G2 T3, 4 for N and specials), for a head with
        base channels."""
        super().__init__()
        if strands == "both" and rc_ids is None:
            raise ValueError("strands='both' needs rc_ids, the reverse-complement id of every token id")
        self.backbone, self.strands, self.pad_id = backbone, strands, pad_id
        if rc_ids is not None:
            self.register_buffer("rc_ids", torch.as_tensor(rc_ids, dtype=torch.long), persistent=False)
        if token_bases is not None:
            self.register_buffer("token_bases", torch.as_tensor(token_bases, dtype=torch.long), persistent=False)
        width = backbone.cfg.d_model * (2 if strands == "both" else 1)
        self.head = SegmentationHead(width, num_classes, kmer_size, head, head_hidden, head_kernel, dropout,
                                     head_levels, head_pool, head_base_channels, head_base_kernel)

    def states(self, input_ids: Tensor) -> Tensor:
        """Per-token states (b, n, d or 2d) the head reads."""
        real = input_ids != self.pad_id
        if self.strands == "both":
            return both_strand_states(self.backbone, input_ids, real, self.rc_ids)
        return self.backbone.hidden_states(input_ids, key_padding_mask=None if bool(real.all()) else ~real)

    def forward(self, input_ids: Tensor) -> Tensor:
        if not self.head.base_channels:
            return self.head(self.states(input_ids))
        if not hasattr(self, "token_bases"):
            raise ValueError("a head with base_channels needs token_bases, the base codes of every token id")
        return self.head(self.states(input_ids), self.token_bases[input_ids].flatten(1))


@dataclass
class SegmenterInfo:
    """What applying a segmenter to a genome needs besides the weights."""

    backbone: LongNetConfig
    causal: bool
    kmer_size: int
    classes: list[str]
    head: dict
    """{"kind": linear | conv | unet, "hidden": int, "kernel": int, "levels": int, "pool": int, "base_channels": int,
    "base_kernel": int} (levels and pool for unet; exports made before them lack the last four)"""
    strands: str
    context_length: int
    """Bases per window the model was trained on: `genomenet annotate` tiles chromosomes into these by default."""
    thresholds: dict[str, float] | None = None
    """Per class, the probability from which a base has it, picked on the validation split for the best MCC
    (`genomenet annotate` calls features with these); None: 0.5 for every class (exports made before them)."""

    def to_dict(self) -> dict:
        return {"format": FORMAT, **asdict(self), "backbone": asdict(self.backbone)}

    @classmethod
    def from_dict(cls, d: dict) -> SegmenterInfo:
        if d.get("format") != FORMAT:
            raise ValueError(f"format is {d.get('format')!r}, not {FORMAT!r}")
        thresholds = d.get("thresholds")
        return cls(LongNetConfig(**d["backbone"]), d["causal"], d["kmer_size"], list(d["classes"]), dict(d["head"]),
                   d["strands"], d["context_length"], dict(thresholds) if thresholds is not None else None)


def build_segmenter(info: SegmenterInfo, rc_ids: Tensor | None, pad_id: int, dropout: float = 0.0,
                    token_bases: Tensor | None = None) -> SegmenterNet:
    h = info.head
    return SegmenterNet(LongNet(info.backbone, causal=info.causal), len(info.classes), info.kmer_size, h["kind"],
                        info.strands, rc_ids, pad_id, h["hidden"], h["kernel"], dropout, h.get("levels", 5),
                        h.get("pool", 4), h.get("base_channels", 0), h.get("base_kernel", 15), token_bases)


def export_segmenter(net: SegmenterNet, info: SegmenterInfo, out_dir: str | Path) -> Path:
    """Write model.safetensors and config.json into out_dir; each file appears whole or not at all."""
    return write_model_dir(net, info.to_dict(), out_dir)


def load_segmenter(path: str | Path, tokenizer_for, map_location: str = "cpu") -> SegmenterNet:
    """An exported segmenter directory or a segmentation training checkpoint, in eval mode, carrying `.info`.
    `tokenizer_for(kmer_size)` gives the tokenizer (its pad id and reverse-complement table; the model package does
    not know tokenizers)."""
    path = Path(path)
    try:
        if path.is_dir():
            info = SegmenterInfo.from_dict(json.loads((path / CONFIG).read_text()))
            state = None
        elif path.is_file():
            ckpt = read_checkpoint(path, map_location)      # one line for a file torch cannot read
            info = SegmenterInfo.from_dict(ckpt[CHECKPOINT_KEY])
            state = {k.removeprefix("net."): v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
        else:
            raise InputFileError(f"{path}: no such segmenter directory or checkpoint file")
    except InputFileError:
        raise
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError) as err:
        reason = " ".join(str(err).split())[:200]
        raise InputFileError(f"{path}: not a genomenet segmentation model ({type(err).__name__}: {reason})") from None
    tokenizer = tokenizer_for(info.kmer_size)
    rc_ids = torch.as_tensor(tokenizer.reverse_complement_ids) if info.strands == "both" else None
    net = build_segmenter(info, rc_ids, tokenizer.pad_id, token_bases=torch.as_tensor(tokenizer.base_codes))
    try:
        if state is None:
            load_model(net, str(path / WEIGHTS), device=map_location)
        else:
            net.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - missing or not safetensors, or weights of another shape than the config
        reason = " ".join(str(err).split())[:200] or type(err).__name__
        where = path / WEIGHTS if state is None else path
        raise InputFileError(f"{where}: not the weights of the segmenter its config describes ({reason})") from None
    net.info = info
    return net.eval()
