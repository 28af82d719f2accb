"""Where long context pays: held-out bits per base by preceding context, split into kinds of target.

The model scores the same last tokens of each held-out window given more and more preceding context
(`lm_scores.context_scores`). Here the targets are split by what long context could offer them:

- `soft-masked`: the FASTA has the base in lowercase (annotated repeats: transposons, satellites);
- `unmasked`: the rest;
- `far copy`: the `match` tokens before the target occur earlier in the window, the latest such copy more than
  `near` tokens back, so only a model that sees beyond `near` tokens can copy the next token from it;
- `... one hop`: those far copies whose next token a query can attend to directly in some dilated branch (the
  same segment and offset, a head with that offset: `one_hop_reachable`). Dilation leaves most copies out of reach:
  a head of a branch with rate r only joins positions an exact multiple of r apart.

The gain of the longest context over a shorter one is reported with two standard errors over windows (the windows are
the independent units; the tokens in a window are not).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from torch import Tensor

from genomenet.model.objectives import bits_per_base

NO_COPY = np.iinfo(np.int64).max


def repeat_distance(windows: Tensor, n_id: int, match: int = 20) -> np.ndarray:
    """(w, n) int64: for each token t, how far back the latest earlier copy of tokens [t - match, t) ends, i.e.
    t - 1 - (end of the copy); NO_COPY when there is none in the window or the run holds an N / special token."""
    ids = windows.numpy().astype(np.uint64)  # (w, n)
    w, n = ids.shape
    out = np.full((w, n), NO_COPY, dtype=np.int64)
    if n <= match:
        return out
    codes, bad = _rolling_codes(ids, windows.numpy() >= n_id, match)  # (w, n - match + 1): run ending at j
    ends = np.broadcast_to(np.arange(match - 1, n), codes.shape)
    rows = np.broadcast_to(np.arange(w)[:, None], codes.shape)
    keep = ~bad
    code, end, row = codes[keep], ends[keep], rows[keep]
    order = np.lexsort((end, code, row))
    code, end, row = code[order], end[order], row[order]
    repeat = (code[1:] == code[:-1]) & (row[1:] == row[:-1])
    target = end[1:][repeat] + 1  # the token after the later copy
    inside = target < n
    out[row[1:][repeat][inside], target[inside]] = (end[1:] - end[:-1])[repeat][inside]
    return out


def _rolling_codes(ids: np.ndarray, invalid: np.ndarray, match: int) -> tuple[np.ndarray, np.ndarray]:
    """64-bit polynomial hashes of every run of `match` tokens, and whether the run holds an invalid token."""
    span = ids.shape[1] - match + 1
    codes = np.zeros((ids.shape[0], span), dtype=np.uint64)
    bad = np.zeros((ids.shape[0], span), dtype=bool)
    with np.errstate(over="ignore"):
        for j in range(match):
            codes = codes * np.uint64(0x100000001B3) + ids[:, j : j + span] + np.uint64(1)
            bad |= invalid[:, j : j + span]
    return codes, bad


@dataclass
class TargetKinds:
    """Boolean (w, score_tokens) masks over the scored targets: the columns of the breakdown table."""

    masks: dict[str, np.ndarray]

    @classmethod
    def of(
        cls,
        windows: Tensor,
        soft_mask: Tensor | None,
        n_id: int,
        score_tokens: int,
        near: int,
        match: int,
        pattern: AttentionPattern | None = None,
        context: int | None = None,
    ):
        """Kinds of the last `score_tokens` tokens of each window (the targets `context_scores` scores); with a
        dilated `pattern`, also the far copies it reaches in one hop given `context` tokens before the scored ones
        (default: the whole window), as `context_scores` feeds them."""
        distance = repeat_distance(windows, n_id, match)[:, -score_tokens:]
        masks = {}
        if soft_mask is not None:
            soft = soft_mask[:, -score_tokens:].numpy().astype(bool)
            masks["soft-masked"], masks["unmasked"] = soft, ~soft
        far = (distance > near) & (distance != NO_COPY)
        masks[f"far copy (>{near:,} back)"] = far
        if pattern is not None:
            before = windows.shape[1] - score_tokens if context is None else context
            target = np.arange(before, before + score_tokens)[None, :]  # positions in the model's input
            # the query predicting the target sits just before it; the copy's next token lies `distance` back
            key = np.where(far, target - np.where(far, distance, 0), 0)
            masks["far copy, one hop"] = far & pattern.one_hop_reachable(target - 1, key)
        return cls(masks)


@dataclass(frozen=True)
class AttentionPattern:
    """The branches of causal dilated attention, to tell which key positions a query attends to."""

    segment_lengths: tuple[int, ...]
    dilation_rates: tuple[int, ...]
    num_heads: int
    sliding_window: int = 0

    def one_hop_reachable(self, query: np.ndarray, key: np.ndarray) -> np.ndarray:
        """Whether some head of some branch attends from `query` to `key` (positions of one sequence from 0): the
        same segment of w, offsets in it equal modulo r, and a head whose offset h % r is that residue."""
        reach = (key <= query) & (query - key <= self.sliding_window) & (self.sliding_window > 0)
        for w, r in zip(self.segment_lengths, self.dilation_rates):
            residue = query % w % r
            reach |= (
                (key <= query)
                & (query // w == key // w)
                & (residue == key % w % r)
                & (residue < min(self.num_heads, r))  # heads 0..num_heads-1 take offsets h % r
            )
        return reach


def scored_sum_and_count(nll: np.ndarray, where: np.ndarray | None = None) -> tuple[float, int]:
    """(sum of NLL in nats, scored tokens) of per-token NLL (NaN = unscored) over the `where` mask, for
    `bits_per_base`."""
    values = nll if where is None else nll[where]
    values = values[~np.isnan(values)]
    return float(values.sum()), int(values.size)


def breakdown_table(scores: dict[int, np.ndarray], kinds: TargetKinds, bases_per_token: int = 1) -> str:
    """Rows: context length; columns: bits per base over all targets and over each kind (with its token count)."""
    first = next(iter(scores.values()))
    counts = {name: int((m & ~np.isnan(first)).sum()) for name, m in kinds.masks.items()}
    head = ["context (bases)", f"all ({int((~np.isnan(first)).sum()):,})"]
    head += [f"{name} ({counts[name]:,})" for name in kinds.masks]
    widths = [max(len(h), 8) for h in head]
    lines = ["  ".join(h.rjust(wd) for h, wd in zip(head, widths))]
    for c, nll in scores.items():
        values = [bits_per_base(*scored_sum_and_count(nll, m), bases_per_token) for m in (None, *kinds.masks.values())]
        cells = [f"{c * bases_per_token:,}", *("-" if math.isnan(v) else f"{v:.4f}" for v in values)]
        lines.append("  ".join(x.rjust(wd) for x, wd in zip(cells, widths)))
    return "\n".join(lines)


def paired_gain(short: np.ndarray, long: np.ndarray, bases_per_token: int = 1) -> tuple[float, float]:
    """(mean bits per base of `short` minus `long` on the same targets, two standard errors over windows)."""
    both = ~np.isnan(short) & ~np.isnan(long)
    diff = np.where(both, short - long, 0.0).sum(1)  # (w,) nats per window
    tokens = both.sum(1)
    keep = tokens > 0
    gain = bits_per_base(float(diff[keep].sum()), int(tokens[keep].sum()), bases_per_token)
    per_window = bits_per_base(diff[keep], tokens[keep], bases_per_token)  # (windows with a scored target,)
    two_se = 2 * per_window.std(ddof=1) / math.sqrt(keep.sum()) if keep.sum() > 1 else float("nan")
    return float(gain), float(two_se)
