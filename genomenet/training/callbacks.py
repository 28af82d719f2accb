"""Callbacks and plugins of the training loop: throughput logging, atomic checkpoint files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO


class TokensPerSecond(L.Callback):
    """Logs `train/tokens_per_second`: tokens of the batches over wall time, averaged over `window` steps."""

    def __init__(self, window: int = 10) -> None:
        """
        Args:
            window: Number of training steps each measurement averages over.
        """
        self.window = window
        self._start: float | None = None
        self._tokens = 0
        self._steps = 0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, idx: int) -> None:
        if self._start is None:
            self._start, self._tokens, self._steps = time.perf_counter(), 0, 0

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, idx: int
    ) -> None:
        self._tokens += batch["input_ids"].numel()
        self._steps += 1
        if self._steps >= self.window and self._start is not None:
            rate = self._tokens / (time.perf_counter() - self._start)
            pl_module.log("train/tokens_per_second", float(rate), prog_bar=True)
            self._start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = None  # validation time is not training throughput


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes each checkpoint to a temporary file beside its target, fsyncs it, then renames it into place.

    Lightning's own writer stages through the system temp directory and moves the file, which is a copy (not
    atomic) when that directory is on another file system; a crash mid-write could then leave a truncated `last.ckpt`.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any = None) -> None:
        if get_filesystem(path).protocol not in ("file", ("file", "local")):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
