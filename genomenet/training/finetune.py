"""`RegionClassifier`: the Lightning module that fine-tunes a LongNet backbone with a pooled classification head.

The head's size comes from the data (its label set), so it is built in `setup`, after the data module has read the
BED and before optimizers or a resumed checkpoint are touched. Losses: binary and multi-label BCE on logits,
multi-class cross-entropy. Validation logs loss, accuracy, MCC and AUROC from scikit-learn.
"""

from __future__ import annotations

from dataclasses import asdict, replace
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from genomenet.baselines.kmer import C_GRID
from genomenet.data.tokenizers import make_tokenizer
from genomenet.errors import ConfigError, InputFileError
from genomenet.evaluation.classification import classification_metrics
from genomenet.model.classifier import CHECKPOINT_KEY, ClassifierInfo
from genomenet.model.heads import Pooling, PoolOver, RegionClassifierNet, Strands, probabilities
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.pretrained import load_pretrained
from genomenet.training.module import (
    LoadsClassPathCheckpoints,
    OptimizerConfig,
    as_init_args,
    load_initial_weights,
    resolve_vocab,
    schedule_steps,
    warmup_cosine,
)
from genomenet.training.probe_init import head_from_probe


class RegionClassifier(LoadsClassPathCheckpoints, L.LightningModule):
    """Fine-tunes a (pre-trained) LongNet on labelled regions: full, frozen, or with a lower backbone learning rate."""

    def __init__(
        self,
        init_weights: str | None = None,
        backbone: LongNetConfig = LongNetConfig(),  # noqa: B008 - read-only default
        causal: bool = False,
        pooling: Pooling = "mean",
        pool_over: PoolOver = "window",
        strands: Strands = "one",
        finetune: Literal["full", "frozen"] = "full",
        backbone_lr_scale: float = 1.0,
        head_dropout: float = 0.1,
        backbone_dropout: float | None = None,
        head_init: Literal["random", "probe"] = "random",
        head_init_windows: int = 4096,
        head_init_c: float | None = None,
        head_init_scaling: Literal["per_feature", "shared"] = "per_feature",
        optimizer: OptimizerConfig = OptimizerConfig(lr=3e-4, weight_decay=0.01, warmup_steps=50),  # noqa: B008
        kmer_size: int = 1,
        context_length: int | None = None,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            init_weights: pre-trained backbone to start from (an exported model directory or a checkpoint); its
                shape and attention (causal for a causal LM, bidirectional for a masked LM) are used. None: a fresh
                backbone of shape `backbone`.
            backbone: shape of a fresh backbone (without init_weights); with init_weights, leave it at its
                defaults: the pre-trained model's shape is used.
            causal: attention of a fresh backbone (without init_weights).
            pooling: mean (default), attention (learned weights over positions), or last (the last real token: the
                one a causal backbone lets see the whole window).
            pool_over: window (every real token) or region (only the tokens holding the labelled region's bases,
                the rest of the window being their context: for short elements such as splice sites or TSSs).
            strands: one (the window as read) or both (also its reverse complement, each base's vector being its
                state in both passes: a causal backbone then sees both sides of the region; twice the compute).
            finetune: full (train everything) or frozen (train only the pooling and head).
            backbone_lr_scale: the backbone's learning rate is optimizer.lr times this (e.g. 0.1).
            head_dropout: dropout on the pooled vector.
            backbone_dropout: the backbone's dropout while fine-tuning; None keeps init_weights' (or `backbone`'s;
                when set, it replaces both).
                0 for LP-FT from a backbone pre-trained with dropout: dropout shifts the pooled features the probe
                was fitted on (eval mode) by a good part of their spread across windows, so the head would start
                far from the probe's solution.
            head_init: random, or probe: before training, fit logistic regression on the frozen features of (at
                most head_init_windows) training windows and start the head from it (LP-FT), so full fine-tuning
                starts where the linear probe ends.
            head_init_windows: training windows the starting probe is fitted on.
            head_init_c: the starting probe's inverse regularisation C; None chooses it on validation among the
                report's grid. A large C gives large weights on standardised features, whose logits swing with
                small changes in the backbone's states: fix a small one (e.g. 1) to start full fine-tuning gently.
            head_init_scaling: the starting probe's features standardised per_feature (as the report's probe) or
                centred and divided by one shared scale (its weights then follow the features' own spread instead
                of amplifying dimensions that barely vary across windows).
            optimizer: AdamW with warm-up and cosine decay.
            kmer_size: bases per token; set from data.kmer_size (must match init_weights').
            context_length: bases per window; set from data.context_length, recorded in the export.
            sequence_parallel_size: set from data; must be 1.
        """
        super().__init__()
        if finetune not in ("full", "frozen") or backbone_lr_scale < 0:
            raise ConfigError(f"model finetune={finetune!r} must be full or frozen, backbone_lr_scale >= 0")
        if not 0 <= head_dropout < 1:
            raise ConfigError(f"model head_dropout={head_dropout} must be in [0, 1)")
        if backbone_dropout is not None and not 0 <= backbone_dropout < 1:
            raise ConfigError(f"model backbone_dropout={backbone_dropout} must be in [0, 1)")
        if head_init not in ("random", "probe") or head_init_windows < 2:
            raise ConfigError(f"model head_init={head_init!r} must be random or probe, head_init_windows >= 2")
        if head_init_scaling not in ("per_feature", "shared"):
            raise ConfigError(f"model head_init_scaling={head_init_scaling!r} must be per_feature or shared")
        if head_init_c is not None and not head_init_c > 0:
            raise ConfigError(f"model head_init_c={head_init_c} must be > 0 (or unset: chosen on validation)")
        self.tokenizer = make_tokenizer(kmer_size)
        self.kmer_size, self.context_length, self.init_weights = kmer_size, context_length, init_weights
        self.pooling, self.finetune, self.lr_scale = pooling, finetune, backbone_lr_scale
        self.pool_over, self.strands = pool_over, strands
        self.head_init, self.head_init_windows, self.head_init_c = head_init, head_init_windows, head_init_c
        self.head_init_scaling = head_init_scaling
        self.optim, self.backbone_dropout = optimizer, backbone_dropout
        # the head gets its size in setup(), from the data's label set
        self.net = RegionClassifierNet(self._backbone(init_weights, backbone, causal), 1, pooling,
                                       self.tokenizer.pad_id, head_dropout, pool_over, strands,
                                       self.tokenizer.reverse_complement_ids)
        self.labels: dict | None = None
        self.window: dict | None = None
        settings = {"init_weights": init_weights, "pooling": pooling, "pool_over": pool_over,
                    "strands": strands, "finetune": finetune,
                    "backbone_lr_scale": backbone_lr_scale, "head_dropout": head_dropout,
                    "backbone_dropout": backbone_dropout,
                    "head_init": head_init, "head_init_windows": head_init_windows,
                    "head_init_c": head_init_c, "head_init_scaling": head_init_scaling,
                    "optimizer": asdict(optimizer), "kmer_size": kmer_size,
                    "context_length": context_length, "backbone": asdict(self.backbone.cfg),
                    "causal": self.backbone.causal}
        self.save_hyperparameters(as_init_args(self, settings))
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def _backbone(self, init_weights: str | None, cfg: LongNetConfig, causal: bool) -> LongNet:
        if init_weights is None:
            cfg = resolve_vocab(cfg, self.tokenizer.vocab_size)
            return LongNet(self._with_dropout(cfg), causal=causal)
        try:
            trained = load_pretrained(init_weights)
        except InputFileError as err:
            raise ConfigError(f"model init_weights: {err}") from None
        # a checkpoint's settings (`fit --ckpt_path`) hold the backbone's shape with backbone_dropout applied
        if cfg != LongNetConfig() and replace(cfg, vocab_size=trained.cfg.vocab_size,
                                              dropout=trained.cfg.dropout) != trained.cfg:
            raise ConfigError(f"model backbone differs from init_weights {init_weights}'s; leave model.backbone unset")
        model = LongNet(self._with_dropout(trained.cfg), causal=trained.info.objective.kind == "causal")
        load_initial_weights(model, init_weights, self.kmer_size)
        return model

    def _with_dropout(self, cfg: LongNetConfig) -> LongNetConfig:
        return cfg if self.backbone_dropout is None else replace(cfg, dropout=self.backbone_dropout)

    # the head needs the data's classes --------------------------------------------------------------------------
    @property
    def backbone(self) -> LongNet:
        return self.net.backbone

    def setup(self, stage: str) -> None:
        self.build_head_for(self.trainer.datamodule)

    def build_head_for(self, data) -> None:
        """The head for a set-up region data module's labels and window, unless one is built. `genomenet fit` calls
        it before the trainer exists, so callbacks that copy the model in their own setup (Lightning's weight
        averaging: EMA, SWA), which runs before this module's, copy the real head."""
        if self.labels is None:
            frames = {"frames": "all"} if data.spec.frames == "all" else {}  # older genomenets read the rest
            self.build_head(data.labels.to_dict(), {"length": data.spec.length, "mode": data.spec.mode,
                                                    "flank": data.spec.flank, **frames})

    def build_head(self, labels: dict, window: dict) -> None:
        self.labels, self.window = labels, window
        self.net.set_outputs(1 if labels["kind"] == "binary" else len(labels["classes"]))
        if self.finetune == "frozen":
            self.backbone.requires_grad_(False)

    def info(self) -> ClassifierInfo:
        return ClassifierInfo(self.backbone.cfg, self.backbone.causal, self.kmer_size, self.pooling, self.labels,
                              self.window, self.pool_over, self.strands)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[CHECKPOINT_KEY] = self.info().to_dict()

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if self.labels is None and CHECKPOINT_KEY in checkpoint:
            saved = checkpoint[CHECKPOINT_KEY]
            self.build_head(saved["labels"], saved["window"])

    def on_fit_start(self) -> None:
        if self.head_init == "probe" and self.trainer.ckpt_path is None:  # a resumed run keeps its trained head
            data = self.trainer.datamodule
            grid = C_GRID if self.head_init_c is None else (self.head_init_c,)
            chosen = head_from_probe(self.net, data, self.head_init_windows, data.batch_size, grid,
                                     self.head_init_scaling)
            print(f"head initialised from a linear probe on the frozen features ({chosen})", flush=True)

    def on_train_epoch_start(self) -> None:
        if self.finetune == "frozen":
            self.backbone.eval()  # no dropout in a frozen backbone

    # steps -----------------------------------------------------------------------------------------------------
    def forward(self, input_ids: Tensor, spans: Tensor | None = None) -> Tensor:
        return self.net(input_ids.long(), spans)

    def loss(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.labels["kind"] == "multiclass":
            return F.cross_entropy(logits, target[:, 0].long())
        return F.binary_cross_entropy_with_logits(logits, target)

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        loss = self.loss(self(batch["input_ids"], batch.get("region")), batch["target"])
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: dict, stage: str) -> None:
        logits = self(batch["input_ids"], batch.get("region"))
        self.log(f"{stage}/loss", self.loss(logits, batch["target"]), prog_bar=stage == "val")
        probs = probabilities(logits.float(), self.labels["kind"])
        self._val.append((batch["target"].cpu().numpy(), probs.cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        self._log_metrics("val")

    def on_test_epoch_end(self) -> None:
        self._log_metrics("test")

    def _log_metrics(self, stage: str) -> None:
        if not self._val:
            return
        targets, probs = (np.concatenate(x) for x in zip(*self._val, strict=True))
        self._val.clear()
        metrics = classification_metrics(self.labels["kind"], targets, probs)
        for name in ("accuracy", "mcc", "auroc"):
            self.log(f"{stage}/{name}", float(metrics[name]), prog_bar=stage == "val" and name == "accuracy")

    def predict_step(self, batch: dict, batch_idx: int) -> Tensor:
        return probabilities(self(batch["input_ids"], batch.get("region")).float(), self.labels["kind"])

    def configure_optimizers(self) -> dict:
        head = [p for n, p in self.net.named_parameters() if not n.startswith("backbone.")]
        groups = [{"params": head, "lr": self.optim.lr}]
        if self.finetune == "full" and self.lr_scale > 0:
            groups.append({"params": [p for p in self.backbone.parameters() if p.requires_grad],
                           "lr": self.optim.lr * self.lr_scale})
        else:
            self.backbone.requires_grad_(False)
        opt = torch.optim.AdamW(groups, lr=self.optim.lr, betas=tuple(self.optim.betas),
                                weight_decay=self.optim.weight_decay)
        total = schedule_steps(self.optim, self.trainer.max_steps, lambda: self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(self.optim, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
