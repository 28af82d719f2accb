"""Held-out evaluation of a causal LM: bits per base on fixed windows, and as a function of preceding context.

The model and the Markov baseline score the same tokens of the same windows: every token after the first one of a
window (it has no context), whose id is a real k-mer (not N, padding or a special).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genomenet.model.longnet import LongNet
from genomenet.model.objectives import IGNORE, causal_targets, token_nll


@torch.no_grad()
def window_nll(model: LongNet, windows: Tensor, n_id: int, first: int = 1, batch_size: int = 16) -> tuple[float, int]:
    """(sum of NLL in nats, scored tokens) over windows (w, n) for targets at positions >= first."""
    model.eval()
    total, count = 0.0, 0
    for batch in windows.long().split(batch_size):
        targets = causal_targets(batch, batch < n_id)  # position t predicts token t+1
        targets[:, : first - 1] = IGNORE
        nll = token_nll(model(batch), targets)
        total, count = total + float(nll.sum()), count + int((targets != IGNORE).sum())
    return total, count


def context_lengths_for(n_tokens: int, score_tokens: int, requested: Sequence[int]) -> list[int]:
    """The requested context lengths (tokens) that fit in windows of n_tokens, keeping score_tokens to score."""
    return [c for c in requested if 1 <= c <= n_tokens - score_tokens]


@torch.no_grad()
def context_curve(
    model: LongNet,
    windows: Tensor,
    n_id: int,
    contexts: Sequence[int],
    score_tokens: int,
    bases_per_token: int = 1,
    batch_size: int = 16,
) -> dict[int, float]:
    """Bits per base on the last `score_tokens` tokens of each window, given `c` tokens of context before them,
    for each c in contexts: the same targets every time, only the visible past changes."""
    n = windows.shape[1]
    curve = {}
    for c in context_lengths_for(n, score_tokens, contexts):
        sliced = windows[:, n - score_tokens - c :]  # (w, c + score_tokens)
        nll, count = window_nll(model, sliced, n_id, first=c, batch_size=batch_size)
        curve[c] = nll / (max(count, 1) * bases_per_token * math.log(2))
    return curve


def context_table(curve: dict[int, float], bases_per_token: int = 1) -> str:
    """A plain-text table: context (tokens and bases) -> held-out bits per base."""
    lines = [f"{'context (tokens)':>16}  {'context (bases)':>15}  {'bits per base':>13}"]
    lines += [f"{c:>16,}  {c * bases_per_token:>15,}  {b:>13.4f}" for c, b in curve.items()]
    return "\n".join(lines)


def save_context_plot(curve: dict[int, float], path: str | Path, baseline: float | None = None) -> Path:
    """Line plot of bits per base over preceding context (log scale), with the Markov baseline as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(list(curve), list(curve.values()), marker="o", label="model")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="Markov baseline (all held-out tokens)")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="preceding context (tokens)", ylabel="held-out bits per base", title="Long-context evaluation")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def stack_windows(batches: Sequence[dict], max_windows: int | None = None) -> Tensor:
    """The `input_ids` of evaluation batches as one (w, n) tensor, the first max_windows of them."""
    windows = torch.cat([b["input_ids"] for b in batches]).long()
    return windows[:max_windows] if max_windows else windows


def markov_alphabet(n_id: int) -> np.ndarray:
    """Token ids a Markov baseline predicts: the real k-mers, 0 .. n_id - 1."""
    return np.arange(n_id)
