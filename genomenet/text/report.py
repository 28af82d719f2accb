"""What `genomenet fit` prints after training a text model: held-out bits per byte at several evaluation lengths
(a table in the shape of the LongNet paper's, and a PNG), beside gzip, bzip2 and xz on the same test bytes.

Every evaluation length scores the same bytes: the longest whole multiple of the longest evaluation window at the
start of the test split (capped by `report.max_windows` training windows). Windows are contiguous and scored in one
pass each; every byte of a window but its first (which has no context) is scored.
"""

from __future__ import annotations

import bz2
import gzip
import json
import lzma
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from genomenet.errors import ConfigError
from genomenet.evaluation.lm_report import scoring_device
from genomenet.model.longnet import LongNet
from genomenet.model.objectives import IGNORE, bits_per_base, causal_targets, token_nll
from genomenet.model.strided import default_stride


@dataclass
class TextResult:
    """The report's figures: bits per byte by evaluation length (bytes), and the compressors'."""

    model_name: str
    train_length: int
    bits_by_length: dict[int, float]
    compressors: dict[str, float]
    scored_bytes: int
    model_dir: Path | None
    curves: dict[str, dict[int, float]] = field(default_factory=dict)
    """Every row of the table (the model as trained first)."""

    @property
    def bits_per_byte(self) -> float:
        """At the training length (the headline figure)."""
        return self.bits_by_length[self.train_length]


def compressor_bits(data: bytes) -> dict[str, float]:
    """Bits per byte of gzip -9, bzip2 -9 and xz -9e on `data` alone (the compressors see only the test bytes)."""
    sizes = {
        "gzip -9": len(gzip.compress(data, compresslevel=9, mtime=0)),
        "bzip2 -9": len(bz2.compress(data, compresslevel=9)),
        "xz -9e": len(lzma.compress(data, preset=9 | lzma.PRESET_EXTREME)),
    }
    return {name: 8 * size / len(data) for name, size in sizes.items()}


def evaluation_lengths(train_length: int, multiples: list[int], available: int) -> list[int]:
    """Evaluation windows (bytes) for the multiples of the training length; a one-line ConfigError when one is not
    a positive integer or the test split cannot hold one window of it."""
    if not multiples or any(m < 1 for m in multiples):
        raise ConfigError(f"report.length_multiples={multiples} must be positive integers")
    lengths = sorted({m * train_length for m in multiples})
    if lengths[-1] > available:
        raise ConfigError(f"report.length_multiples={multiples}: an evaluation window of {lengths[-1]:,} bytes "
                          f"({lengths[-1] // train_length}x data.context_length) is longer than the "
                          f"{available:,} bytes of the test split; lower the multiples")
    return lengths


def extended_backbone(backbone, length: int):
    """The dilated backbone with branches added, each doubling the last one's segment length and dilation rate (the
    paper's geometric sequence), until a segment spans `length`: the same weights then reach the whole evaluation
    window, sparsely. None for other attention, or when the trained branches already span it."""
    if backbone.attention != "dilated" or max(backbone.segment_lengths) >= length:
        return None
    segments, rates = list(backbone.segment_lengths), list(backbone.dilation_rates)
    while segments[-1] < length:
        segments.append(2 * segments[-1])
        rates.append(2 * rates[-1])
    return replace(backbone, segment_lengths=segments, dilation_rates=rates)


def length_curves(model, data: np.ndarray, lengths: list[int], device) -> dict[str, dict[int, float]]:
    """Bits per byte by evaluation length of the model as trained, and (dilated attention) of the same weights
    with branches extended to each evaluation length."""
    curves = {model_label(model.cfg): {n: bits_per_byte(model, data, n, device, desc=f"scoring in windows of {n:,}")
                                       for n in lengths}}
    extended = {}
    for n in lengths:
        cfg = extended_backbone(model.cfg, n)
        if cfg is None:
            extended[n] = curves[model_label(model.cfg)][n]
            continue
        wider = LongNet(cfg, causal=True).to(device)
        wider.load_state_dict(model.state_dict())
        extended[n] = bits_per_byte(wider, data, n, device, desc=f"scoring in windows of {n:,}, branches extended")
    if model.cfg.attention == "dilated":
        curves["LongNet, branches extended to the window"] = extended
    return curves


def model_label(backbone) -> str:
    """A row name for the table: the attention and its sparsity."""
    if backbone.attention == "dense":
        return "dense attention"
    if backbone.attention == "local":
        return f"local attention (window {backbone.local_window or min(backbone.segment_lengths)})"
    if backbone.attention == "strided":
        return f"strided attention (stride {backbone.stride or default_stride(backbone.segment_lengths)})"
    pairs = ", ".join(f"{w}/{r}" for w, r in zip(backbone.segment_lengths, backbone.dilation_rates))
    sliding = f", sliding {backbone.sliding_window}" if backbone.sliding_window else ""
    return f"LongNet (dilated w/r {pairs}{sliding})"


@torch.no_grad()
def bits_per_byte(model, data: np.ndarray, length: int, device: torch.device, tokens_per_batch: int = 16384,
                  desc: str | None = None) -> float:
    """Bits per byte of a causal byte model on `data` cut into contiguous windows of `length` bytes."""
    model.eval()
    windows = torch.from_numpy(np.asarray(data[: len(data) // length * length], dtype=np.int64)).view(-1, length)
    batch_size = max(1, tokens_per_batch // length)
    nll, count = 0.0, 0
    for batch in tqdm(windows.split(batch_size), desc=desc, unit="batch", leave=False, disable=desc is None):
        batch = batch.to(device)
        targets = causal_targets(batch, torch.ones_like(batch, dtype=torch.bool))
        token = token_nll(model(batch).float(), targets)
        nll += float(token[targets != IGNORE].double().sum())
        count += int((targets != IGNORE).sum())
    return bits_per_base(nll, count)  # a byte is the unit: bits per byte


def length_table(rows: dict[str, tuple[int, dict[int, float]]], compressors: dict[str, float]) -> str:
    """Rows `name -> (training length, {evaluation length: bits per byte})` and the compressors, as text."""
    lengths = sorted({n for _, curve in rows.values() for n in curve})
    width = max([len(name) for name in [*rows, *compressors]] + [20])
    head = f"{'model':<{width}}  {'trained at':>10}" + "".join(f"  {f'eval {n:,}':>11}" for n in lengths)
    lines = [head]
    for name, (trained, curve) in rows.items():
        cells = "".join(f"  {curve[n]:>11.3f}" if n in curve else f"  {'-':>11}" for n in lengths)
        lines.append(f"{name:<{width}}  {trained:>10,}{cells}")
    for name, bits in compressors.items():
        lines.append(f"{name + ' (test bytes)':<{width}}  {'-':>10}" + f"  {bits:>11.3f}" * len(lengths))
    return "\n".join(lines)


def save_length_plot(curves: dict[str, dict[int, float]], compressors: dict[str, float], path: str | Path,
                     title: str = "Held-out bits per byte by evaluation length") -> Path:
    """Bits per byte against evaluation length (log scale), one line per model, compressors as dashed lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, curve in curves.items():
        ax.plot(list(curve), list(curve.values()), marker="o", label=name)
    for (name, bits), style in zip(compressors.items(), (":", "-.", "--")):
        ax.axhline(bits, color="grey", linestyle=style, label=f"{name} (test bytes)")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="evaluation length (bytes)", ylabel="bits per byte", title=title)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def scored_span(datamodule, cfg) -> tuple[np.ndarray, list[int]]:
    """The test bytes every length scores, and the evaluation lengths."""
    test = datamodule.split_bytes("test")
    train_length = datamodule.context_length
    lengths = evaluation_lengths(train_length, list(cfg.length_multiples), len(test))
    span = len(test)
    if cfg.max_windows:
        span = min(span, max(cfg.max_windows * train_length, lengths[-1]))
    return test[: span // lengths[-1] * lengths[-1]], lengths


def text_report(module, datamodule, cfg, out_dir: Path, run_dir: Path, export: bool = True) -> TextResult:
    """Score the test split at every evaluation length, compress the same bytes, print the table, save the plot
    and `held_out_report.json`, and export the model (if `export`)."""
    t0 = time.perf_counter()
    if not module.model.causal:
        raise ConfigError("the text report scores a causal model (model.objective.kind: causal)")
    data, lengths = scored_span(datamodule, cfg)
    device = scoring_device(module)   # the trainer's (Lightning moves the module back to CPU after fit)
    curves = length_curves(module.model.to(device).float(), data, lengths, device)
    name, curve = next(iter(curves.items()))
    compressors = compressor_bits(bytes(data))
    print(f"held-out bits per byte on {len(data):,} test bytes by evaluation length ({datamodule.corpus.convention}):")
    print(length_table({n: (datamodule.context_length, c) for n, c in curves.items()}, compressors))
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = save_length_plot(curves, compressors, out_dir / "bits_per_byte_by_length.png")
    print(f"plot: {plot}")
    if export:
        from genomenet.model.pretrained import export_model

        export_model(module.model, module.info, out_dir)
    result = TextResult(name, datamodule.context_length, curve, compressors, len(data), out_dir if export else None,
                        curves)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "held_out_report.json").write_text(json.dumps(asdict(result), indent=2, default=str) + "\n")
    print(f"evaluation{' and export' if export else ''} took {time.perf_counter() - t0:.1f}s")
    return result


def final_lines(result: TextResult) -> str:
    """The two lines `genomenet fit` ends with for a text model (a contract); the first alone without export."""
    line = f"held-out bits per byte: {result.bits_per_byte:.3f} (xz: {result.compressors['xz -9e']:.3f})"
    return line if result.model_dir is None else f"{line}\nmodel: {result.model_dir}"
