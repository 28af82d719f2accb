"""`VariantEffectClassifier`: a supervised variant-effect head on (reference, alternative, difference) embeddings.

The backbone (`init_weights`) pools each window's last hidden states (mean over real tokens) and reads the hidden
state at the variant's first token; the head is a small MLP on [ref, alt, alt - ref, alt_site - ref_site] with one
logit (BCE). A frozen backbone (the default) gives the same features every epoch,
so they are computed once per example and kept; `finetune: full` trains through the backbone.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score
from torch import Tensor, nn

from genomenet.data.tokenizers import make_tokenizer
from genomenet.errors import ConfigError, InputFileError
from genomenet.model.longnet import LongNet
from genomenet.model.pretrained import load_pretrained
from genomenet.training.module import (
    LoadsClassPathCheckpoints,
    OptimizerConfig,
    as_init_args,
    load_initial_weights,
    schedule_steps,
    warmup_cosine,
)


def pooled(backbone: LongNet, ids: Tensor, pad_id: int, site: Tensor) -> tuple[Tensor, Tensor]:
    """Mean of the last hidden states over real tokens (b, d), and the hidden state at the variant's token (b, d)."""
    real = ids != pad_id
    hidden = backbone.hidden_states(ids, key_padding_mask=None if bool(real.all()) else ~real)
    weights = real.to(hidden.dtype).unsqueeze(-1)
    at_site = hidden[torch.arange(len(ids), device=ids.device), site]
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1), at_site


class VariantEffectClassifier(LoadsClassPathCheckpoints, L.LightningModule):
    """Learns which variants carry the label (e.g. rare) from the backbone's view of both alleles."""

    def __init__(
        self,
        init_weights: str,
        finetune: Literal["frozen", "full"] = "frozen",
        hidden: int = 64,
        dropout: float = 0.1,
        optimizer: OptimizerConfig = OptimizerConfig(lr=1e-3, weight_decay=0.01, warmup_steps=20),  # noqa: B008
        kmer_size: int = 1,
        context_length: int | None = None,
        sequence_parallel_size: int = 1,
    ) -> None:
        """
        Args:
            init_weights: the pre-trained backbone (an exported model or a checkpoint).
            finetune: frozen (train only the head; features cached) or full.
            hidden: width of the head's hidden layer.
            dropout: dropout in the head.
            optimizer: AdamW with warm-up and cosine decay.
            kmer_size: set from data.kmer_size (must match the backbone's).
            context_length: set from data.context_length.
            sequence_parallel_size: set from data; must be 1.
        """
        super().__init__()
        try:
            trained = load_pretrained(init_weights)
        except InputFileError as err:
            raise ConfigError(f"model init_weights: {err}") from None
        self.backbone = LongNet(trained.cfg, causal=trained.info.objective.kind == "causal")
        load_initial_weights(self.backbone, init_weights, kmer_size)
        self.init_weights, self.finetune, self.optim = init_weights, finetune, optimizer
        tokenizer = make_tokenizer(kmer_size)
        self.pad_id, self.n_id = tokenizer.pad_id, tokenizer.n_id
        d = trained.cfg.d_model
        self.head = nn.Sequential(nn.Linear(4 * d, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, 1))
        if finetune == "frozen":
            self.backbone.requires_grad_(False)
        settings = {"init_weights": init_weights, "finetune": finetune, "hidden": hidden,
                    "dropout": dropout, "optimizer": asdict(optimizer), "kmer_size": kmer_size,
                    "context_length": context_length}
        self.save_hyperparameters(as_init_args(self, settings))
        self._cache: dict[tuple[str, int], Tensor] = {}
        self._val: list[tuple[np.ndarray, np.ndarray]] = []

    def features(self, batch: dict, split: str) -> Tensor:
        """[ref, alt, alt - ref, alt_site - ref_site] embeddings (b, 4d); cached per example when frozen."""
        keys = [(split, int(i)) for i in batch["index"]]
        if self.finetune == "frozen" and all(k in self._cache for k in keys):
            return torch.stack([self._cache[k] for k in keys]).to(self.device)
        if self.finetune == "frozen":
            self.backbone.eval()
        with torch.set_grad_enabled(self.finetune == "full" and torch.is_grad_enabled()):
            (ref, ref_site), (alt, alt_site) = (pooled(self.backbone, batch[key], self.pad_id, batch["site"])
                                                for key in ("ref", "alt"))
        feats = torch.cat([ref, alt, alt - ref, alt_site - ref_site], dim=-1)
        if self.finetune == "frozen":
            self._cache.update({k: f.detach().cpu() for k, f in zip(keys, feats, strict=True)})
        return feats

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        logits = self.head(self.features(batch, "train"))[:, 0]
        loss = F.binary_cross_entropy_with_logits(logits, batch["target"].float())
        self.log("train/loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def _eval_step(self, batch: dict, stage: str) -> None:
        logits = self.head(self.features(batch, stage))[:, 0]
        self.log(f"{stage}/loss", F.binary_cross_entropy_with_logits(logits, batch["target"].float()),
                 prog_bar=stage == "val")
        self._val.append((batch["target"].cpu().numpy(), torch.sigmoid(logits).float().cpu().numpy()))

    def on_validation_epoch_end(self) -> None:
        self._log_auroc("val")

    def on_test_epoch_end(self) -> None:
        self._log_auroc("test")

    def _log_auroc(self, stage: str) -> None:
        if self._val:
            y, p = (np.concatenate(x) for x in zip(*self._val, strict=True))
            self._val.clear()
            if 0 < y.sum() < len(y):
                self.log(f"{stage}/auroc", float(roc_auc_score(y, p)), prog_bar=stage == "val")

    def configure_optimizers(self) -> dict:
        params = [p for p in self.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=self.optim.lr, betas=tuple(self.optim.betas),
                                weight_decay=self.optim.weight_decay)
        total = schedule_steps(self.optim, self.trainer.max_steps, lambda: self.trainer.estimated_stepping_batches)
        schedule = torch.optim.lr_scheduler.LambdaLR(opt, warmup_cosine(self.optim, total))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
