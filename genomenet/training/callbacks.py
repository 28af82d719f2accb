"""Callbacks and plugins of the training loop: throughput logging, the final step in `last.ckpt`, atomic checkpoint
files."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint
from lightning.pytorch.plugins.io import TorchCheckpointIO

from genomenet.errors import ConfigError


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
        self._tokens += sum(batch[key].numel() for key in ("input_ids", "ref", "alt") if key in batch)
        self._steps += 1
        if self._steps >= self.window and self._start is not None:
            rate = self._tokens / (time.perf_counter() - self._start)
            pl_module.log("train/tokens_per_second", float(rate), prog_bar=True)
            self._start = None

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start = None  # validation time is not training throughput


class FinalModelCheckpoint(ModelCheckpoint):
    """Lightning's ModelCheckpoint, except that `last.ckpt` holds the final step when a run ends between two saves
    (max_steps not a multiple of every_n_train_steps, max_time, an early stop): Lightning keeps the older one there,
    so `--ckpt_path last` would resume, validate or export a model some steps short of the trained one. It is saved
    at the end of the final batch, as the periodic saves are, so a resumed run goes on mid-epoch exactly."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Lightning 2.6 writes `last.ckpt` at a validation or epoch end only when a top-k file was saved there, so
        after an epoch that did not improve the monitored metric `last.ckpt` would still hold the last improvement
        (and `--ckpt_path last.ckpt` would train the later epochs again)."""
        self._check_monitor(trainer)
        super().on_validation_end(trainer, pl_module)
        if not self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._should_save_on_train_epoch_end(trainer):
            self._save_last_if_missed(trainer)

    def _check_monitor(self, trainer: L.Trainer) -> None:
        """A monitored metric the run never logs is a typo: say so at the first validation. Lightning would only warn
        at a periodic save before validation, and fail at a later one, after training for nothing."""
        if self.monitor is None or self.save_top_k == 0 or trainer.sanity_checking or trainer.state.fn != "fit":
            return
        logged = self._monitor_candidates(trainer)
        if self.monitor not in logged:
            names = ", ".join(sorted(k for k in logged if k not in ("epoch", "step")))
            raise ConfigError(f"checkpoint.monitor: {self.monitor!r} is not a metric this run logs; it logs {names}")

    def _save_last_if_missed(self, trainer: L.Trainer) -> None:
        if self.save_last and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any, **kwargs: Any) -> None:
        super().on_train_batch_end(trainer, pl_module, *args, **kwargs)
        final = trainer.should_stop or 0 <= trainer.max_steps <= trainer.global_step  # max_time sets should_stop
        if final and self.save_last and not self._should_skip_saving_checkpoint(trainer):  # skips a step saved
            saved = self._last_global_step_saved
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
            self._last_global_step_saved = saved  # else a validation at this final step would save no top-k file


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


class WindowScoresWriter(BasePredictionWriter):
    """`genomenet predict` output: one TSV row per window (chrom, start, end, bits_per_base), written atomically."""

    def __init__(self, filename: str = "predictions.tsv") -> None:
        """
        Args:
            filename: File name inside the run directory (trainer.log_dir, else default_root_dir); with several
                ranks each writes its own `<stem>.rank<N><suffix>`.
        """
        super().__init__(write_interval="epoch")
        self.filename = filename

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        path = Path(trainer.log_dir or trainer.default_root_dir) / self.filename
        if trainer.world_size > 1:
            path = path.with_name(f"{path.stem}.rank{trainer.global_rank}{path.suffix}")
        rows = [f"{c}\t{s}\t{e}\t{b:.4f}" for batch in _flatten(predictions) for c, s, e, b in
                zip(batch["chrom"], batch["start"].tolist(), batch["end"].tolist(), batch["bits_per_base"].tolist())]
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        partial.write_text("chrom\tstart\tend\tbits_per_base\n" + "".join(r + "\n" for r in rows))
        os.replace(partial, path)
        print(f"predictions: {path} ({len(rows)} windows)", flush=True)


def _flatten(predictions: list) -> list[dict]:
    """Lightning gives a list of batch outputs, or a list of such lists with several dataloaders."""
    return [b for item in predictions for b in (item if isinstance(item, list) else [item])]
