"""What `genomenet fit` prints at the end: held-out bits per base of the model and of a Markov baseline on the same
windows, the exported model, and (optionally) bits per base as a function of preceding context."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch

from genomenet.baselines.markov import fit_markov
from genomenet.data.region_tokens import RegionTokens, region_tokens
from genomenet.errors import ConfigError
from genomenet.evaluation.context_gain import (
    AttentionPattern,
    TargetKinds,
    breakdown_table,
    paired_gain,
    scored_sum_and_count,
)
from genomenet.evaluation.lm_scores import (
    batches,
    context_scores,
    markov_alphabet,
    model_device,
    save_context_plot,
    stack_windows,
    window_nll,
)
from genomenet.model.objectives import bits_per_base


@dataclass
class ReportConfig:
    """The report after `fit`: held-out bits per base beside a Markov baseline, and the exported model."""

    enabled: bool = True
    """Evaluate, export and print the two final lines after fit."""
    export_dir: str | None = None
    """Where the trained model is exported (safetensors + config.json); default `model/` beside the checkpoints."""
    max_windows: int | None = None
    """Held-out windows scored (test split if it has any, else validation); default all of them."""
    markov_max_order: int = 12
    """The Markov baseline's order is chosen in 0..this on the tail of the training data."""
    markov_alpha: float = 0.5
    """Add-alpha smoothing of the Markov baseline."""
    context_lengths: list[int] = field(default_factory=list)
    """Long-context evaluation: preceding context lengths (tokens) to score the last `score_tokens` with; empty:
    skip. Lengths that do not fit in a window are left out."""
    score_tokens: int = 128
    """Long-context evaluation: tokens at the end of each window that are scored."""
    reference_context: int = 1024
    """Long-context evaluation: the gain of the longest context is measured against this one (tokens; the shortest
    of `context_lengths` if it is not one of them), and a target counts as a `far copy` when the latest earlier copy
    of the tokens before it lies further back."""
    repeat_match: int = 20
    """Long-context evaluation: tokens before a target that must recur, exactly, for it to count as a copy."""
    kmer_sizes: list[int] = field(default_factory=lambda: [1, 2, 3, 4, 5, 6])
    """Region fine-tuning: the k-mer spectrum baseline's k is chosen on validation data among these."""
    use_best: bool = True
    """Fine-tuning (regions, segmentation): report and export the best checkpoint by checkpoint.monitor, when one is
    monitored."""
    probe_max_bases: int | None = None
    """Region fine-tuning: the linear probe fits on a seeded subset of at most this many training bases (windows x
    window length); None: every training window. Keeps the probe's embedding pass affordable at long windows."""
    length_multiples: list[int] = field(default_factory=lambda: [1, 4, 16])
    """Text models: held-out bits per byte with evaluation windows of these multiples of data.context_length."""
    segment_baselines: list[Literal["scratch", "cnn"]] = field(default_factory=lambda: ["scratch", "cnn"])
    """Segmentation: baselines trained after the model with its steps and batch size, and scored beside it:
    scratch (the same architecture without pre-training), cnn (a dilated CNN on one-hot bases whose receptive field
    is about the LongNet's shortest segment); empty: none."""
    segment_max_bases: int = 2_000_000
    """Segmentation: at most about this many test bases are scored (every s-th base of each test window)."""
    segment_cnn_channels: int = 64
    """Segmentation: channels of the CNN baseline."""

    def __post_init__(self) -> None:   # with the config, not after training
        if not self.kmer_sizes or any(k < 1 for k in self.kmer_sizes):
            raise ConfigError(f"report.kmer_sizes={list(self.kmer_sizes)} must name at least one k >= 1")


@dataclass
class HeldOut:
    """Results of the report."""

    bits_per_base: float
    markov_bits_per_base: float
    markov_order: int
    windows: int
    model_dir: Path | None
    """The exported model; None when the report was made without exporting (validate, test)."""
    curve: dict[int, float]
    gain: tuple[int, int, float, float] | None = None
    """(short context, long context, bits per base saved by the long one, two standard errors)."""


def held_out_split(datamodule) -> str:
    """The test split when the data config holds one out, else validation."""
    datamodule.setup()
    return "test" if datamodule.regions.get("test") else "val"


def training_tokens(datamodule) -> list[RegionTokens]:
    """Token ids of every training region, encoded a slice at a time as the Markov baseline streams over them."""
    return region_tokens(datamodule.genome, datamodule.tokenizer, datamodule.regions["train"])


def run_report(module, datamodule, cfg: ReportConfig, default_dir: Path, export: bool = True) -> HeldOut:
    """Score the held-out windows with the trained model and the Markov baseline; export the model (if `export`)."""
    t0 = time.perf_counter()
    model = module.model.to(scoring_device(module)).float().eval()  # scored in float32 where it trained
    tok, k = datamodule.tokenizer, module.bases_per_token
    split = held_out_split(datamodule)
    loaded = list(datamodule.dataloader(split, every_rank=True))  # rank 0 alone scores every held-out window
    windows = stack_windows(loaded, cfg.max_windows)  # (w, n)
    soft_mask = stack_windows(loaded, cfg.max_windows, key="soft_mask") if "soft_mask" in loaded[0] else None
    desc = f"scoring {len(windows):,} held-out windows"
    nll, count = window_nll(model, windows, tok.n_id, desc=desc) if model.causal else masked_nll(module, windows, desc)
    bits = bits_per_base(nll, count, k)
    what = "tokens" if model.causal else "masked tokens (bidirectional model: not comparable to a causal one)"
    print(f"scored {len(windows)} held-out {split} windows of {windows.shape[1]} tokens: {count:,} {what}")
    max_order = max_markov_order(tok.n_id, cfg.markov_max_order)
    markov = fit_markov(training_tokens(datamodule), markov_alphabet(tok.n_id), max_order, cfg.markov_alpha)
    m_bits, m_count = markov.bits_per_token(windows.numpy())
    m_bpb = m_bits / (m_count * k)
    print(f"Markov baseline: order {markov.order} (chosen on the tail of the training data), add-{cfg.markov_alpha}")
    out_dir = Path(cfg.export_dir) if cfg.export_dir else default_dir
    curve, gain = long_context(model, windows, soft_mask, tok.n_id, cfg, k, out_dir, m_bpb)
    if export:
        from genomenet.model.pretrained import export_model

        export_model(model, module.info, out_dir)
    print(f"evaluation{' and export' if export else ''} took {time.perf_counter() - t0:.1f}s")
    return HeldOut(bits, m_bpb, markov.order, len(windows), out_dir if export else None, curve, gain)


@torch.no_grad()
def masked_nll(module, windows: torch.Tensor, desc: str | None = None, batch_size: int = 16) -> tuple[float, int]:
    """(NLL in nats, scored tokens) of a masked LM on its BERT-masked tokens, masks fixed by the batch index."""
    total, count, device = 0.0, 0, model_device(module.model)
    for i, batch in enumerate(batches(windows, batch_size, desc)):
        nll, n = module.nll(batch.to(device), torch.Generator(device).manual_seed(i))
        total, count = total + float(nll), count + int(n)
    return total, count


def scoring_device(module) -> torch.device:
    """The device the trainer ran on (Lightning moves the module back to CPU when fit ends), else the module's own:
    the report scores there, so a GPU run is not evaluated on the CPU."""
    try:
        return module.trainer.strategy.root_device
    except (RuntimeError, AttributeError):  # not attached to a Trainer
        return model_device(getattr(module, "model", module))


def long_context(
    model, windows, soft_mask, n_id: int, cfg: ReportConfig, k: int, out_dir: Path, baseline: float
) -> tuple[dict[int, float], tuple[int, int, float, float] | None]:
    """Bits per base over preceding context, overall and by kind of target (where long context pays): tables on
    stdout, PNG beside the exported model; and the gain of the longest context over the reference one."""
    if not cfg.context_lengths or not model.causal:
        return {}, None
    scores = context_scores(model, windows, n_id, cfg.context_lengths, cfg.score_tokens, progress=True)
    if not scores:
        return {}, None
    short = cfg.reference_context if cfg.reference_context in scores else min(scores)
    long = max(scores)
    kinds = TargetKinds.of(windows, soft_mask, n_id, cfg.score_tokens, short, cfg.repeat_match,
                           attention_pattern(model.cfg), long)
    curve = {c: bits_per_base(*scored_sum_and_count(nll), k) for c, nll in scores.items()}
    by_kind = {name: {c: bits_per_base(*scored_sum_and_count(nll, m), k) for c, nll in scores.items()}
               for name, m in kinds.masks.items()}
    out_dir.mkdir(parents=True, exist_ok=True)
    plot = save_context_plot(curve, out_dir / "long_context.png", baseline, by_kind)
    print(f"held-out bits per base of the last {cfg.score_tokens} tokens of {len(windows)} windows by preceding "
          f"context, overall and by kind of target (tokens counted in brackets; {plot}):")
    print(breakdown_table(scores, kinds, k))
    if long == short:
        return curve, None
    saved, two_se = paired_gain(scores[short], scores[long], k)
    print(f"{long * k:,} bases of context instead of {short * k:,}: {saved:+.4f} bits per base saved "
          f"(+- {two_se:.4f}, two standard errors over windows)")
    return curve, (short, long, saved, two_se)


def attention_pattern(backbone) -> AttentionPattern | None:
    """The dilated branches of a backbone config (None for dense attention, which reaches every earlier key)."""
    if backbone.attention != "dilated":
        return None
    return AttentionPattern(tuple(backbone.segment_lengths), tuple(backbone.dilation_rates), backbone.n_heads,
                            backbone.sliding_window)


def max_markov_order(alphabet_size: int, requested: int) -> int:
    """The requested order, lowered so that contexts still fit in 62-bit integer codes."""
    return max(0, min(requested, int(62 / math.log2(max(alphabet_size, 2))) - 1))


def final_lines(result: HeldOut) -> str:
    """The two lines `genomenet fit` ends with (a contract: scripts read them); the first alone without export."""
    line = f"held-out bits per base: {result.bits_per_base:.3f} (Markov baseline: {result.markov_bits_per_base:.3f})"
    return line if result.model_dir is None else f"{line}\nmodel: {result.model_dir}"
