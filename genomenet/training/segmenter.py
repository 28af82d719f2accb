"""Lightning modules that learn per-base segmentation (exon, intron, CDS, splice sites, ...) from a
`SegmentDataModule`: `Segmenter` (a LongNet backbone, warm-started or fresh, and a per-base head) and
`ConvSegmenterModule` (the dilated-CNN baseline on one-hot bases). Both share `SegmentationTask`: the classes come
from the data module in `setup`, as the region classifier's labels do.

Loss: binary cross-entropy on logits, per base and class, averaged over the known bases (not N, not past a contig's
end). Each class's positives weigh `pos_weight = clip(negatives / positives, 1, max_pos_weight)` from its frequency
in the training split: a splice-site class has 2 positive bases per intron, and without the weight a model that never
calls it has nearly the lowest loss. The weight moves the 0.5 threshold of the sigmoid toward recall for rare
classes (balanced-accuracy-like calls); `max_pos_weight: 1` turns it off.

Fine-tuning can start with the head alone (`head_warmup_steps`): a fresh head's first gradients are mostly about
the classes' frequencies, push every token's state the same way, and at a fine-tuning learning rate wash the token
identity out of the backbone within a few dozen steps (seen on a tiny model: the head then never separates the
classes; trained alone first, it does).

Validation logs `val/loss` and `val/mcc`, the mean over classes of the base-level MCC at threshold 0.5 (classes with
no positive or no negative validation base left out: their MCC is 0 whatever the model does), on every
`val_stride`-th base of each validation window, so at most `val_max_bases` bases are held in memory.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, replace
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from genomenet.data.annotation import CORE_CLASSES
from genomenet.data.tokenizers import KmerTokenizer, make_tokenizer
from genomenet.errors import ConfigError, InputFileError
from genomenet.evaluation.segmentation import mcc_per_class, scored_classes
from genomenet.model.conv_segmenter import ConvSegmenter
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.pretrained import load_pretrained
from genomenet.model.segmenter import (
    CHECKPOINT_KEY,
    SegmentationHead,
    SegmenterInfo,
    SegmenterNet,
)
from genomenet.training.module import (
    LoadsClassPathCheckpoints,
    OptimizerConfig,
    as_init_args,
    load_initial_weights,
    resolve_vocab,
    schedule_steps,
    warmup_cosine,
)

StrandsChoice = Literal["auto", "forward", "both"]


def masked_bce(logits: Tensor, labels: Tensor, known: Tensor, pos_weight: Tensor | None = None) -> Tensor:
    """Mean binary cross-entropy over the known bases and every class: logits, labels (b, L, C), known (b, L)."""
    per = F.binary_cross_entropy_with_logits(logits.float(), labels, pos_weight=pos_weight, reduction="none")
    weight = known.unsqueeze(-1).float()                                     # (b, L, 1)
    return (per * weight).sum() / (weight.sum() * labels.shape[-1]).clamp_min(1.0)


def pos_weights(frequencies: np.ndarray, cap: float) -> Tensor:
    """clip(negatives / positives, 1, cap) per class from training frequencies; cap for a class with no positive."""
    f = np.asarray(frequencies, dtype=np.float64)
    ratio = np.where(f > 0, (1 - f) / np.maximum(f, 1e-12), cap)
    return torch.as_tensor(np.clip(ratio, 1.0, max(cap, 1.0)), dtype=torch.float32)


def token_base_codes(tokenizer: KmerTokenizer) -> Tensor:
    """(vocab, k) base codes of every token id (the k-mer digits, first base most significant); N and the
    specials give 4."""
    return torch.as_tensor(tokenizer.base_codes, dtype=torch.long)


class SegmentationTask(L.LightningModule):
    """Loss, validation MCC and the optimizer of a per-base segmenter; subclasses build `self.net` and its head
    (`build_head(classes)`) and say which parameters are the backbone's."""

    backbone_lr_scale = 1.0
    """The backbone's learning rate is optimizer.lr times this."""
    head_warmup_steps = 0
    """Steps at the start in which only the head trains (the backbone's learning rate is 0)."""

    def __init__(self, optimizer: OptimizerConfig, max_pos_weight: float, val_max_bases: int) -> None:
        super().__init__()
        if max_pos_weight < 1 or val_max_bases < 1:
            raise ConfigError(f"model max_pos_weight={max_pos_weight} (>= 1) and val_max_bases={val_max_bases} "
                              "(>= 1) must hold")
        self.optim, self.max_pos_weight, self.val_max_bases = optimizer, max_pos_weight, val_max_bases
        self.classes: list[str] | None = None
        self.val_stride = 1
        self.register_buffer("pos_weight", torch.ones(0), persistent=False)
        self._held: list[tuple[np.ndarray, np.ndarray]] = []

    def build_head(self, classes: list[str]) -> None:
        raise NotImplementedError

    def backbone_parameters(self) -> list[nn.Parameter]:
        return []

    def build_head_for(self, data) -> None:
        """The head for a set-up data module's classes, unless one is built (before the trainer, in `genomenet
        fit`, so weight-averaging callbacks copy the real head: `RegionClassifier.build_head_for`)."""
        if self.classes is None:
            self.build_head(list(data.labels.classes))

    def setup(self, stage: str) -> None:
        data = self.trainer.datamodule
        self.build_head_for(data)
        self.pos_weight = pos_weights(data.train_frequencies(), self.max_pos_weight).to(self.device)
        self.val_stride = max(1, math.ceil(len(data.tiles["val"]) * data.context_length / self.val_max_bases))

    def forward(self, input_ids: Tensor) -> Tensor:
        return self.net(input_ids.long())

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = masked_bce(self(batch["input_ids"]), batch["labels"], batch["known"], self.pos_weight)
        self.log("train/loss", loss, prog_bar=True, batch_size=len(batch["input_ids"]))
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: dict, stage: str) -> None:
        logits = self(batch["input_ids"]).float()
        self.log(f"{stage}/loss", masked_bce(logits, batch["labels"], batch["known"], self.pos_weight),
                 prog_bar=stage == "val", batch_size=len(logits))
        keep = batch["known"][:, :: self.val_stride]                         # (b, L / stride)
        probs = torch.sigmoid(logits[:, :: self.val_stride][keep])           # (m, C)
        self._held.append((batch["labels"][:, :: self.val_stride][keep].cpu().numpy().astype(np.uint8),
                           probs.cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        self._log_mcc("val")

    def on_test_epoch_end(self) -> None:
        self._log_mcc("test")

    def _log_mcc(self, stage: str) -> None:
        if not self._held:
            return
        targets, probs = (np.concatenate(x) for x in zip(*self._held, strict=True))
        self._held.clear()
        mcc, keep = mcc_per_class(targets, probs >= 0.5), scored_classes(targets)
        self.log(f"{stage}/mcc", float(mcc[keep].mean()) if keep.any() else 0.0, prog_bar=stage == "val")
        for name, value, scored in zip(self.classes, mcc, keep, strict=True):
            if scored:
                self.log(f"{stage}/mcc_{name}", float(value))

    def predict_step(self, batch: dict, batch_idx: int) -> Tensor:
        return torch.sigmoid(self(batch["input_ids"]).float())

    def configure_optimizers(self) -> dict:
        backbone = {id(p) for p in self.backbone_parameters()}
        head = [p for p in self.net.parameters() if id(p) not in backbone and p.requires_grad]
        groups = [{"params": head, "lr": self.optim.lr}]
        trainable = [p for p in self.backbone_parameters() if p.requires_grad]
        if trainable and self.backbone_lr_scale > 0:
            groups.append({"params": trainable, "lr": self.optim.lr * self.backbone_lr_scale})
        opt = torch.optim.AdamW(groups, lr=self.optim.lr, betas=tuple(self.optim.betas),
                                weight_decay=self.optim.weight_decay)
        total = schedule_steps(self.optim, self.trainer.max_steps, lambda: self.trainer.estimated_stepping_batches)
        lambdas = [warmup_cosine(self.optim, total), after_head_warmup(self.optim, total, self.head_warmup_steps)]
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambdas[: len(groups)])
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}


class after_head_warmup(warmup_cosine):  # noqa: N801 - a picklable function object for LambdaLR
    """The backbone's learning-rate multiplier: 0 for the first `frozen` steps, then a fresh linear warm-up into the
    head's cosine schedule."""

    def __init__(self, cfg: OptimizerConfig, total: int, frozen: int) -> None:
        super().__init__(cfg, total)
        self.frozen = frozen

    def __call__(self, step: int) -> float:
        if step < self.frozen:
            return 0.0
        ramp = min(1.0, (step - self.frozen + 1) / max(self.warmup, 1)) if self.frozen else 1.0
        return super().__call__(step) * ramp


class Segmenter(LoadsClassPathCheckpoints, SegmentationTask):
    """Per-base segmentation with a (pre-trained) LongNet backbone and a per-base head: fine-tuned fully, frozen,
    or with a lower backbone learning rate. Exported with `genomenet.model.segmenter.export_segmenter`."""

    def __init__(
        self,
        init_weights: str | None = None,
        backbone: LongNetConfig = LongNetConfig(),  # noqa: B008 - read-only default
        causal: bool | None = None,
        strands: StrandsChoice = "auto",
        head: Literal["conv", "linear", "unet"] = "conv",
        head_hidden: int = 128,
        head_kernel: int = 9,
        head_levels: int = 5,
        head_pool: int = 4,
        head_base_channels: int = 0,
        head_base_kernel: int = 15,
        head_dropout: float = 0.1,
        finetune: Literal["full", "frozen"] = "full",
        backbone_lr_scale: float = 1.0,
        head_warmup_steps: int = 0,
        max_pos_weight: float = 50.0,
        val_max_bases: int = 1_000_000,
        optimizer: OptimizerConfig = OptimizerConfig(lr=5e-4, weight_decay=0.01, warmup_steps=50),  # noqa: B008
        kmer_size: int = 1,
        context_length: int | None = None,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            init_weights: pre-trained backbone to start from (an exported model directory or a checkpoint); its
                shape is used. None: a fresh backbone of shape `backbone`.
            backbone: shape of a fresh backbone (without init_weights); with init_weights only its segment_lengths,
                dilation_rates, dropout and gradient_checkpointing may be set (e.g. longer segments to read longer
                windows than the backbone was pre-trained on), the rest is the pre-trained model's.
            causal: attention of the backbone; None: the pre-trained model's objective (causal LM: causal, masked
                LM: bidirectional), bidirectional for a fresh backbone.
            strands: both (run the backbone over the window and its reverse complement, and give the head both
                states: a causal backbone then sees both sides of every base), forward (one pass), or auto (both
                for a causal backbone, forward for a bidirectional one).
            head: conv (a small convolutional decoder over the tokens' states), linear (one map per token) or unet
                (a 1-D U-Net over the states, reading kilobases around each token: `genomenet.model.unet`).
            head_hidden: width of the conv or U-Net head.
            head_kernel: kernel (tokens, odd) of the head's convolutions.
            head_levels: the U-Net's coarser resolutions (its receptive field grows with head_pool ** head_levels).
            head_pool: how many times coarser each U-Net level is than the one above.
            head_base_channels: 0 gives each base's logits from its token's state alone; more refines them at base
                resolution: the head's output up-sampled to this many channels per base, the one-hot bases added,
                two convolutions of head_base_kernel bases (k-mer tokens blur where a splice site lies in them).
            head_base_kernel: kernel (bases, odd) of the base-resolution convolutions.
            head_dropout: dropout on the states the head reads.
            finetune: full (train everything) or frozen (train only the head).
            backbone_lr_scale: the backbone's learning rate is optimizer.lr times this.
            head_warmup_steps: train only the head for this many steps, then everything (the backbone with its own
                linear warm-up): a fresh head's first gradients, mostly about the classes' frequencies, otherwise
                push every token's state the same way and can wash the token identity out of the backbone
                (linear probing, then fine-tuning).
            max_pos_weight: cap of the per-class positive weight of the loss (negatives / positives in the
                training split); 1 turns the weighting off.
            val_max_bases: at most this many validation bases (every stride-th of each window) feed val/mcc.
            optimizer: AdamW with warm-up and cosine decay.
            kmer_size: bases per token; set from data.kmer_size (must match init_weights').
            context_length: bases per window; set from data.context_length, recorded in the export.
            sequence_parallel_size: set from data; must be 1.
        """
        super().__init__(optimizer, max_pos_weight, val_max_bases)
        if finetune not in ("full", "frozen") or backbone_lr_scale < 0 or head_warmup_steps < 0:
            raise ConfigError(f"model finetune={finetune!r} must be full or frozen, backbone_lr_scale >= 0 and "
                              f"head_warmup_steps >= 0")
        if head_kernel % 2 == 0 or (head == "unet" and (head_levels < 1 or head_pool < 2)):
            raise ConfigError(f"model head_kernel={head_kernel} must be odd, and a unet head needs head_levels >= 1 "
                              f"and head_pool >= 2 (got {head_levels}, {head_pool})")
        if head_base_channels < 0 or head_base_kernel % 2 == 0:
            raise ConfigError(f"model head_base_channels={head_base_channels} must be >= 0 and head_base_kernel="
                              f"{head_base_kernel} odd")
        self.tokenizer = make_tokenizer(kmer_size)
        self.kmer_size, self.context_length, self.init_weights = kmer_size, context_length, init_weights
        self.finetune, self.backbone_lr_scale, self.head_warmup_steps = finetune, backbone_lr_scale, head_warmup_steps
        self.head_args = {"kind": head, "hidden": head_hidden, "kernel": head_kernel, "levels": head_levels,
                          "pool": head_pool, "base_channels": head_base_channels, "base_kernel": head_base_kernel}
        self.head_dropout = head_dropout
        model = self._backbone(init_weights, backbone, causal)
        check_window(model.cfg, context_length, kmer_size)
        self.strands = strands if strands != "auto" else ("both" if model.causal else "forward")
        rc_ids = torch.as_tensor(self.tokenizer.reverse_complement_ids) if self.strands == "both" else None
        # the head gets its size in setup(), from the data's classes
        self.net = SegmenterNet(model, 1, kmer_size, head, self.strands, rc_ids, self.tokenizer.pad_id, head_hidden,
                                head_kernel, head_dropout, head_levels, head_pool, head_base_channels,
                                head_base_kernel, token_base_codes(self.tokenizer))
        settings = {"init_weights": init_weights, "causal": model.causal, "strands": self.strands,
                    "head": head, "head_hidden": head_hidden, "head_kernel": head_kernel,
                    "head_levels": head_levels, "head_pool": head_pool,
                    "head_base_channels": head_base_channels, "head_base_kernel": head_base_kernel,
                    "head_dropout": head_dropout, "finetune": finetune,
                    "backbone_lr_scale": backbone_lr_scale, "head_warmup_steps": head_warmup_steps,
                    "max_pos_weight": max_pos_weight, "val_max_bases": val_max_bases,
                    "optimizer": asdict(optimizer), "kmer_size": kmer_size,
                    "context_length": context_length, "backbone": asdict(model.cfg)}
        self.save_hyperparameters(as_init_args(self, settings))

    def _backbone(self, init_weights: str | None, cfg: LongNetConfig, causal: bool | None) -> LongNet:
        if init_weights is None:
            return LongNet(resolve_vocab(cfg, self.tokenizer.vocab_size), causal=bool(causal))
        try:
            trained = load_pretrained(init_weights)
        except InputFileError as err:
            raise ConfigError(f"model init_weights: {err}") from None
        shape = with_geometry(trained.cfg, cfg, init_weights)
        pretrained_causal = trained.info.objective.kind == "causal"
        model = LongNet(shape, causal=pretrained_causal if causal is None else causal)
        load_initial_weights(model, init_weights, self.kmer_size)
        return model

    @property
    def backbone(self) -> LongNet:
        return self.net.backbone

    def backbone_parameters(self) -> list[nn.Parameter]:
        return list(self.backbone.parameters())

    def build_head(self, classes: list[str]) -> None:
        self.classes = list(classes)
        width = self.backbone.cfg.d_model * (2 if self.strands == "both" else 1)
        self.net.head = SegmentationHead(width, len(classes), self.kmer_size, dropout=self.head_dropout,
                                         **self.head_args)   # head_args' keys are the head's argument names
        if self.finetune == "frozen":
            self.backbone.requires_grad_(False)

    def on_train_epoch_start(self) -> None:
        if self.finetune == "frozen":
            self.backbone.eval()  # no dropout in a frozen backbone

    def info(self) -> SegmenterInfo:
        return SegmenterInfo(self.backbone.cfg, self.backbone.causal, self.kmer_size, list(self.classes),
                             dict(self.head_args), self.strands, self.context_length)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.info().to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if CHECKPOINT_KEY not in checkpoint:
            return
        saved = list(checkpoint[CHECKPOINT_KEY]["classes"])
        if self.classes is None:
            self.build_head(saved)
        elif saved != self.classes:   # else load_state_dict's multi-line size mismatch, as a traceback
            missing, new = [c for c in saved if c not in self.classes], [c for c in self.classes if c not in saved]
            differ = (f"only in the checkpoint: {', '.join(missing) or 'none'}; only in the annotation: "
                      f"{', '.join(new) or 'none'}") if missing or new else "the same classes in another order"
            raise ConfigError(f"ckpt_path: the checkpoint's segmenter calls {len(saved)} classes, this annotation "
                              f"gives {len(self.classes)} ({differ}); --data.extra_types "
                              f"'{json.dumps(saved[len(CORE_CLASSES):])}' gives the checkpoint's columns when the "
                              "annotation has no class the checkpoint lacks")

    def scratch_twin(self) -> Segmenter:
        """The same architecture and training recipe (optimizer, backbone learning rate, head warm-up) with fresh
        weights, the backbone trained too even when this one's is frozen: the no-pre-training baseline."""
        h = self.head_args
        return Segmenter(None, self.backbone.cfg, self.backbone.causal, self.strands, h["kind"], h["hidden"],
                         h["kernel"], h["levels"], h["pool"], h["base_channels"], h["base_kernel"], self.head_dropout,
                         "full", self.backbone_lr_scale or 1.0, self.head_warmup_steps, self.max_pos_weight,
                         self.val_max_bases, self.optim, self.kmer_size, self.context_length)


class ConvSegmenterModule(SegmentationTask):
    """The dilated CNN baseline (`genomenet.model.conv_segmenter.ConvSegmenter`) with the Segmenter's loss,
    validation and optimizer."""

    def __init__(self, optimizer: OptimizerConfig, receptive_field: int, channels: int = 64, kmer_size: int = 1,
                 dropout: float = 0.1, max_pos_weight: float = 50.0, val_max_bases: int = 1_000_000) -> None:
        """receptive_field: bases each logit reads (about the LongNet's shortest segment x kmer_size)."""
        super().__init__(optimizer, max_pos_weight, val_max_bases)
        self.receptive_field, self.channels, self.dropout = receptive_field, channels, dropout
        self.token_bases = token_base_codes(make_tokenizer(kmer_size))
        self.net: ConvSegmenter | None = None

    def build_head(self, classes: list[str]) -> None:
        self.classes = list(classes)
        self.net = ConvSegmenter(len(classes), self.token_bases, self.receptive_field, self.channels,
                                 dropout=self.dropout).to(self.device)


GEOMETRY = ("segment_lengths", "dilation_rates", "dropout", "gradient_checkpointing")
"""Backbone fields a warm start may change: the attention's branches (the weights do not depend on them, so a
backbone pre-trained on short windows can read longer ones), dropout and recomputation."""


def with_geometry(trained: LongNetConfig, asked: LongNetConfig, path: str) -> LongNetConfig:
    """The pre-trained shape with the geometry fields the config sets; a one-line error for any other difference."""
    default = LongNetConfig()
    for name in asked.__dataclass_fields__:
        value = getattr(asked, name)
        if name in GEOMETRY or name == "vocab_size" or value == getattr(default, name):
            continue
        if value != getattr(trained, name):
            raise ConfigError(f"model backbone.{name}={value} differs from init_weights {path}'s "
                              f"({getattr(trained, name)}); only {', '.join(GEOMETRY)} may change")
    changed = {name: getattr(asked, name) for name in GEOMETRY if getattr(asked, name) != getattr(default, name)}
    return replace(trained, **changed)


def check_window(cfg: LongNetConfig, context_length: int | None, kmer_size: int) -> None:
    """Raise ConfigError when a window's tokens exceed the backbone's longest attention segment: tokens near a
    segment's edge would lose the context on one side."""
    if context_length is None or cfg.attention != "dilated":
        return
    tokens = context_length // kmer_size
    if tokens > max(cfg.segment_lengths):
        raise ConfigError(
            f"data.context_length={context_length} gives {tokens} tokens, more than the backbone's longest attention "
            f"segment ({max(cfg.segment_lengths)}, model.backbone.segment_lengths or init_weights'): lower "
            f"data.context_length to at most {max(cfg.segment_lengths) * kmer_size} or use a longer segment")
