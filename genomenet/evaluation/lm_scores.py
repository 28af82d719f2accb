"""Held-out evaluation of a causal LM: bits per base on fixed windows, and as a function of preceding context.

The model and the Markov baseline score the same tokens of the same windows: every token after the first one of a
window (it has no context), whose id is a real k-mer (not N, padding or a special).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from genomenet.evaluation.context_gain import scored_sum_and_count
from genomenet.model.longnet import LongNet
from genomenet.model.objectives import IGNORE, bits_per_base, causal_targets, token_nll


def batches(windows: Tensor, batch_size: int, desc: str | None = None):
    """The windows in batches of token ids; with `desc`, behind a progress bar on stderr (evaluation is long)."""
    chunks = windows.long().split(batch_size)
    return tqdm(chunks, desc=desc, unit="batch", leave=False, disable=desc is None)


def window_nll(
    model: LongNet, windows: Tensor, n_id: int, first: int = 1, batch_size: int = 16, desc: str | None = None
) -> tuple[float, int]:
    """(sum of NLL in nats, scored tokens) over windows (w, n) for targets at positions >= first."""
    nll = target_nll(model, windows, n_id, batch_size, desc)[:, first:]
    return float(np.nansum(nll)), int((~np.isnan(nll)).sum())


def context_lengths_for(n_tokens: int, score_tokens: int, requested: Sequence[int]) -> list[int]:
    """The requested context lengths (tokens) that fit in windows of n_tokens, keeping score_tokens to score."""
    return [c for c in requested if 1 <= c <= n_tokens - score_tokens]


@torch.no_grad()
def target_nll(
    model: LongNet, windows: Tensor, n_id: int, batch_size: int = 16, desc: str | None = None
) -> np.ndarray:
    """(w, n) float64: NLL in nats of token j given tokens < j of its window; NaN where j is not scored (the first
    token, N, padding, specials)."""
    model.eval()
    device, rows = model_device(model), []
    for batch in batches(windows, batch_size, desc):
        batch = batch.to(device, non_blocking=True)
        targets = causal_targets(batch, batch < n_id)  # position t predicts token t+1
        nll = token_nll(model(batch), targets).double()
        nll[targets == IGNORE] = float("nan")
        rows.append(torch.cat([torch.full_like(nll[:, :1], float("nan")), nll[:, :-1]], dim=1).cpu())
    return torch.cat(rows).numpy()


def model_device(model: torch.nn.Module) -> torch.device:
    """Where the model's weights are (evaluation batches go there); CPU for a model without parameters."""
    return next(model.parameters(), torch.empty(0)).device


def context_scores(
    model: LongNet,
    windows: Tensor,
    n_id: int,
    contexts: Sequence[int],
    score_tokens: int,
    batch_size: int = 16,
    progress: bool = False,
) -> dict[int, np.ndarray]:
    """Per-token NLL (w, score_tokens) of the last `score_tokens` tokens of each window given `c` tokens of context
    before them, for each c in contexts that fits: the same targets every time, only the visible past changes."""
    n, scores = windows.shape[1], {}
    for c in context_lengths_for(n, score_tokens, contexts):
        desc = f"scoring with {c:,} tokens of context" if progress else None
        scores[c] = target_nll(model, windows[:, n - score_tokens - c :], n_id, batch_size, desc)[:, c:]  # (w, s)
    return scores


def context_curve(
    model: LongNet,
    windows: Tensor,
    n_id: int,
    contexts: Sequence[int],
    score_tokens: int,
    bases_per_token: int = 1,
    batch_size: int = 16,
) -> dict[int, float]:
    """Bits per base on the last `score_tokens` tokens of each window by preceding context (`context_scores`)."""
    scores = context_scores(model, windows, n_id, contexts, score_tokens, batch_size)
    return {c: bits_per_base(*scored_sum_and_count(nll), bases_per_token) for c, nll in scores.items()}


def context_table(curve: dict[int, float], bases_per_token: int = 1) -> str:
    """A plain-text table: context (tokens and bases) -> held-out bits per base."""
    lines = [f"{'context (tokens)':>16}  {'context (bases)':>15}  {'bits per base':>13}"]
    lines += [f"{c:>16,}  {c * bases_per_token:>15,}  {b:>13.4f}" for c, b in curve.items()]
    return "\n".join(lines)


def save_context_plot(
    curve: dict[int, float],
    path: str | Path,
    baseline: float | None = None,
    by_kind: dict[str, dict[int, float]] | None = None,
) -> Path:
    """Line plot of bits per base over preceding context (log scale), one line per kind of target beside the
    overall one, with the Markov baseline as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(list(curve), list(curve.values()), marker="o", label="model, all targets")
    for name, kind_curve in (by_kind or {}).items():
        ax.plot(list(kind_curve), list(kind_curve.values()), marker=".", linestyle=":", label=f"model, {name}")
    if baseline is not None:
        ax.axhline(baseline, color="grey", linestyle="--", label="Markov baseline (all held-out tokens)")
    ax.set_xscale("log", base=2)
    ax.set(xlabel="preceding context (tokens)", ylabel="held-out bits per base", title="Long-context evaluation")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def stack_windows(batches: Sequence[dict], max_windows: int | None = None, key: str = "input_ids") -> Tensor:
    """`key` (default the token ids) of evaluation batches as one (w, n) tensor, the first max_windows of them."""
    windows = torch.cat([b[key] for b in batches])
    windows = windows.long() if key == "input_ids" else windows
    return windows[:max_windows] if max_windows else windows


def markov_alphabet(n_id: int) -> np.ndarray:
    """Token ids a Markov baseline predicts: the real k-mers, 0 .. n_id - 1."""
    return np.arange(n_id)
