"""The held-out report of per-base segmentation: the trained segmenter beside its baselines on the test split.

Baselines (`report.segment_baselines`), each trained on the same data module with the same batch size and number of
optimizer steps as the model (its trainer's `global_step`), the same validation cadence, and the weights of its best
validation by the metric the model's checkpoints monitor:
- `scratch`: the same architecture (backbone shape, attention, strands, head) with fresh weights, fully trained: what
  pre-training adds. Skipped when the model itself had no pre-training.
- `cnn`: a dilated CNN on one-hot bases whose receptive field is about the LongNet's shortest attention segment
  (in bases): what attention beyond a convolution's reach adds.

Every model is scored on the same bases: the known (not N) bases of the test tiles, every `stride`-th base of each
window when the tiles hold more than `report.segment_max_bases`. Per class: MCC and F1 at threshold 0.5 on the
sigmoid, and AUPRC (scikit-learn); means over the classes that have positive and negative test bases. Beside them,
each model's mean MCC and F1 at per-class thresholds picked on the validation tiles (the best validation MCC,
`mcc_thresholds`); the exported model keeps its thresholds, which `genomenet annotate` calls features with.
"""

from __future__ import annotations

import copy
import json
import math
import os
from dataclasses import dataclass, replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from tqdm import tqdm

from genomenet.evaluation.segmentation import (
    SEGMENT_METRICS,
    base_metrics,
    mcc_thresholds,
    mean_metrics,
    scored_classes,
)
from genomenet.model.segmenter import export_segmenter
from genomenet.training.segmenter import ConvSegmenterModule, SegmentationTask, Segmenter

BASELINES = ("scratch", "cnn")


@dataclass
class SegmentReport:
    classes: list[str]
    rows: dict[str, dict[str, dict[str, float]]]
    """Model -> class -> mcc, f1, auprc, positives."""
    means: dict[str, dict[str, float]]
    """Model -> mean of each metric over the scored classes."""
    scored: list[str]
    """Classes with positive and negative test bases: the ones the means are over."""
    model_row: str
    tuned: dict[str, dict[str, float]]
    """Model -> mean MCC and F1 over the scored classes at its per-class thresholds picked on validation."""
    thresholds: dict[str, dict[str, float]]
    """Model -> class -> that threshold (0.5 for a class without positive and negative validation bases)."""
    windows: int
    bases: int
    stride: int
    steps: int
    notes: list[str]
    model_dir: Path | None

    def best_baseline(self) -> str | None:
        names = [n for n in self.rows if n != self.model_row]
        return max(names, key=lambda n: self.means[n]["mcc"]) if names else None


class KeepBest(Callback):
    """Keeps, in memory, the weights of the best validation by `monitor` and puts them back at the end of fit."""

    def __init__(self, monitor: str | None, mode: str = "max") -> None:
        self.monitor, self.sign = monitor, 1.0 if mode == "max" else -1.0
        self.best, self.state = -math.inf, None

    def on_validation_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is not None and self.sign * float(value) > self.best:
            self.best = self.sign * float(value)
            self.state = {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}

    def on_fit_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)


def accelerator_name(trainer: L.Trainer) -> str:
    name = type(trainer.accelerator).__name__.removesuffix("Accelerator").lower()
    return {"cuda": "gpu"}.get(name, name)


def train_baseline(module: SegmentationTask, datamodule, trainer: L.Trainer, steps: int) -> SegmentationTask:
    """Fit a baseline with the model trainer's optimizer steps, gradient accumulation (so it sees as many windows),
    precision, clipping and validation cadence; best weights."""
    ckpt = trainer.checkpoint_callback
    keep = KeepBest(ckpt.monitor if ckpt is not None else None, getattr(ckpt, "mode", "max"))
    baseline = L.Trainer(
        max_steps=steps, max_epochs=-1, logger=False, enable_checkpointing=False, enable_model_summary=False,
        accelerator=accelerator_name(trainer), devices=1, precision=trainer.precision,
        gradient_clip_val=trainer.gradient_clip_val, accumulate_grad_batches=trainer.accumulate_grad_batches,
        val_check_interval=trainer.val_check_interval,
        check_val_every_n_epoch=trainer.check_val_every_n_epoch, limit_val_batches=trainer.limit_val_batches,
        num_sanity_val_steps=0, enable_progress_bar=trainer.progress_bar_callback is not None, callbacks=[keep])
    baseline.fit(module, datamodule=datamodule)
    return module


def baseline_modules(module: Segmenter, names: list[str], cnn_channels: int) -> tuple[dict, list[str]]:
    """Fresh baseline modules by row name, and notes on the ones skipped."""
    modules, notes = {}, []
    for name in names:
        if name == "scratch" and not module.init_weights:
            notes.append("scratch baseline skipped: the model itself had no pre-training (model.init_weights)")
        elif name == "scratch":
            torch.manual_seed(0)
            modules["LongNet from scratch (same architecture)"] = module.scratch_twin()
        elif name == "cnn":
            torch.manual_seed(0)
            cfg = module.backbone.cfg
            shortest = cfg.local_window if cfg.attention == "local" and cfg.local_window else min(cfg.segment_lengths)
            cnn = ConvSegmenterModule(module.optim, shortest * module.kmer_size, cnn_channels, module.kmer_size,
                                      max_pos_weight=module.max_pos_weight, val_max_bases=module.val_max_bases)
            modules[f"dilated CNN on one-hot bases (receptive field ~{shortest * module.kmer_size:,} bp)"] = cnn
    return modules, notes


@torch.no_grad()
def test_scores(net: torch.nn.Module, loader, stride: int, device: torch.device,
                desc: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(targets (m, C) uint8, probs (m, C) float32) on every `stride`-th known base of the loader's windows."""
    targets, probs = [], []
    for batch in tqdm(loader, desc=desc, disable=desc is None, leave=False):
        keep = batch["known"][:, ::stride]                                   # (b, L / stride)
        logits = net(batch["input_ids"].to(device)).float()[:, ::stride]     # (b, L / stride, C)
        probs.append(torch.sigmoid(logits[keep.to(device)]).cpu().numpy())
        targets.append(batch["labels"][:, ::stride][keep].numpy().astype(np.uint8))
    return np.concatenate(targets), np.concatenate(probs)


def scoring_stride(n_tiles: int, context_length: int, max_bases: int) -> int:
    """Every how many bases of a window are scored so that `n_tiles` windows give at most about `max_bases`."""
    return max(1, math.ceil(n_tiles * context_length / max_bases))


def validation_thresholds(net: torch.nn.Module, datamodule, device: torch.device, max_bases: int) -> np.ndarray:
    """(C,) per-class thresholds with the best MCC on the validation tiles (at most about `max_bases` bases)."""
    stride = scoring_stride(len(datamodule.tiles["val"]), datamodule.context_length, max_bases)
    return mcc_thresholds(*test_scores(net, datamodule.dataloader("val"), stride, device))


def segment_report(module: Segmenter, datamodule, trainer: L.Trainer, baselines: list[str], out_dir: Path,
                   export: bool = True, max_bases: int = 2_000_000, cnn_channels: int = 64) -> SegmentReport:
    """Pick the segmenter's thresholds on validation and export it, train the baselines, score all of them on the
    test split; print the table."""
    datamodule.setup()
    device = trainer.strategy.root_device
    classes = list(datamodule.labels.classes)
    net = module.net.float().eval().to(device)
    model_row = "fine-tuned LongNet" if module.init_weights else "LongNet (no pre-training)"
    thresholds = {model_row: validation_thresholds(net, datamodule, device, max_bases)}
    info = replace(module.info(), thresholds=dict(zip(classes, thresholds[model_row].tolist(), strict=True)))
    model_dir = export_segmenter(copy.deepcopy(net).cpu(), info, out_dir) if export else None
    tiles = datamodule.tiles["test"]
    stride = scoring_stride(len(tiles), datamodule.context_length, max_bases)
    loader = datamodule.dataloader("test")
    targets, probs = test_scores(net, loader, stride, device, desc="scoring test windows")
    outputs, steps = {model_row: probs}, trainer.global_step
    modules, notes = baseline_modules(module, baselines, cnn_channels) if steps else ({}, [
        "baselines skipped: this run took no optimizer step to match (they are trained after fit)"])
    for name, baseline in modules.items():
        print(f"training the baseline {name}: {steps} steps of {datamodule.batch_size} windows", flush=True)
        trained = train_baseline(baseline, datamodule, trainer, steps).net.float().eval().to(device)
        thresholds[name] = validation_thresholds(trained, datamodule, device, max_bases)
        outputs[name] = test_scores(trained, loader, stride, device)[1]
    scored = [c for c, keep in zip(classes, scored_classes(targets), strict=True) if keep]
    rows = {name: base_metrics(classes, targets, p) for name, p in outputs.items()}
    means = {name: mean_metrics(per_class, scored) for name, per_class in rows.items()}
    tuned = {name: mean_metrics(base_metrics(classes, targets, p, thresholds[name]), scored)
             for name, p in outputs.items()}
    report = SegmentReport(classes, rows, means, scored, model_row,
                           {name: {"mcc": m["mcc"], "f1": m["f1"]} for name, m in tuned.items()},
                           {name: dict(zip(classes, t.tolist(), strict=True)) for name, t in thresholds.items()},
                           len(tiles), len(targets), stride, steps, notes, model_dir)
    print(report_table(report), flush=True)
    return report


def report_table(report: SegmentReport) -> str:
    """The held-out table (markdown): a row per class, a column per model (MCC / F1 / AUPRC), the mean row, and
    what the model loses to."""
    names = list(report.rows)
    every = "every known base" if report.stride == 1 else f"every {report.stride}th known base"
    lines = [f"held-out test split: {report.windows} windows, {report.bases:,} bases scored ({every}; N left out); "
             "cells are MCC / F1 / AUPRC at base level, threshold 0.5 on the sigmoid",
             "| class | positive bases | " + " | ".join(names) + " |", "|---|---:|" + "---:|" * len(names)]
    for c in report.classes:
        positives = report.rows[report.model_row][c]["positives"]
        cells = [_cell(report.rows[n][c]) if c in report.scored else "n/a" for n in names]
        lines.append(f"| {c} | {positives:,} | " + " | ".join(cells) + " |")
    lines.append(f"| mean over {len(report.scored)} classes | | " + " | ".join(_cell(report.means[n]) for n in names)
                 + " |")
    lines.append("| mean MCC / F1 at per-class thresholds picked on validation | | "
                 + " | ".join(f"{report.tuned[n]['mcc']:.3f} / {report.tuned[n]['f1']:.3f}" for n in names) + " |")
    best = report.best_baseline()
    if best is not None:
        lines.append(f"best baseline by mean MCC: {best}; baselines trained {report.steps} steps each, like the model")
    return "\n".join(lines + report.notes + losses(report))


def _cell(m: dict[str, float]) -> str:
    return " / ".join("n/a" if math.isnan(m[k]) else f"{m[k]:.3f}" for k in SEGMENT_METRICS)


def losses(report: SegmentReport) -> list[str]:
    """Plain sentences where the model's mean MCC does not beat a baseline's, and the classes where it loses to
    the best baseline."""
    model, said = report.means[report.model_row]["mcc"], []
    for name in report.rows:
        if name != report.model_row and not model > report.means[name]["mcc"]:
            verdict = "TIES with" if model == report.means[name]["mcc"] else "LOSES to"
            said.append(f"the {report.model_row} {verdict} the {name} on mean MCC ({model:.3f} vs "
                        f"{report.means[name]['mcc']:.3f})")
    best = report.best_baseline()
    if best is None:
        return said
    if not said:
        said.append(f"the {report.model_row} beats every baseline on mean MCC")
    behind = [f"{c} ({report.rows[report.model_row][c]['mcc']:.3f} vs {report.rows[best][c]['mcc']:.3f})"
              for c in report.scored if not report.rows[report.model_row][c]["mcc"] > report.rows[best][c]["mcc"]]
    if behind:
        said.append(f"classes where it does not beat the best baseline on MCC: {', '.join(behind)}")
    return said


def write_report_json(report: SegmentReport, path: Path) -> None:
    clean = lambda v: None if isinstance(v, float) and math.isnan(v) else v
    models = {name: {"mean": {k: clean(v) for k, v in report.means[name].items()},
                     "mean_at_validation_thresholds": {k: clean(v) for k, v in report.tuned[name].items()},
                     "validation_thresholds": report.thresholds[name],
                     "per_class": {c: {k: clean(v) for k, v in m.items()} for c, m in per_class.items()}}
              for name, per_class in report.rows.items()}
    data = {"split": "test", "windows": report.windows, "bases_scored": report.bases, "stride": report.stride,
            "threshold": 0.5, "classes": report.classes, "mean_over": report.scored, "model": report.model_row,
            "best_baseline": report.best_baseline(), "baseline_steps": report.steps, "notes": report.notes,
            "model_dir": str(report.model_dir) if report.model_dir else None, "models": models}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def final_lines(report: SegmentReport) -> str:
    """`held-out MCC: X.XXX (baseline: Y.YYY)` (means over classes; the best baseline) and `model: PATH`."""
    best = report.best_baseline()
    baseline = f"{report.means[best]['mcc']:.3f}" if best else "n/a"
    lines = [f"held-out MCC: {report.means[report.model_row]['mcc']:.3f} (baseline: {baseline})"]
    if report.model_dir is not None:
        lines.append(f"model: {report.model_dir}")
    return "\n".join(lines)
