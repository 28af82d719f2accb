"""Order-k Markov model over token ids: the baseline a genomic language model must beat.

Counts are vectorised with numpy: a context of j symbols is one integer (base-A digits), and the counts of each order
are a sorted array of (context, next symbol) codes from `np.unique`, looked up with `np.searchsorted`. Probabilities
use add-alpha smoothing over the alphabet. Tokens outside the alphabet (N, padding) are never predicted and break
contexts: a position whose j previous tokens are not all in the alphabet uses the longest context that is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def symbols(tokens: np.ndarray, alphabet: np.ndarray) -> np.ndarray:
    """Dense symbol ids 0..A-1 for tokens in the alphabet, -1 for the rest (same shape)."""
    lookup = np.full(max(int(tokens.max(initial=0)), int(alphabet.max())) + 1, -1, dtype=np.int64)
    lookup[alphabet] = np.arange(len(alphabet))
    return lookup[tokens]


def valid_run(sym: np.ndarray) -> np.ndarray:
    """Along the last axis: how many consecutive valid symbols end at each position (inclusive)."""
    valid = sym >= 0
    idx = np.arange(sym.shape[-1])
    last_invalid = np.maximum.accumulate(np.where(valid, -1, idx), axis=-1)
    return idx - last_invalid


def context_codes(sym: np.ndarray, order: int, base: int) -> np.ndarray:
    """Code of the `order` symbols before each position (last axis); positions < order get garbage (masked later)."""
    code = np.zeros(sym.shape, dtype=np.int64)
    for i in range(1, order + 1):
        shifted = np.zeros_like(sym)
        shifted[..., i:] = np.maximum(sym[..., :-i], 0)
        code = code * base + shifted
    return code


@dataclass
class MarkovModel:
    """Counts of every order 0..max_order; `order` is the one used for scoring."""

    alphabet: np.ndarray
    max_order: int
    alpha: float
    joint: list[tuple[np.ndarray, np.ndarray]]  # per order: sorted (context * A + symbol) codes, counts
    context: list[tuple[np.ndarray, np.ndarray]]  # per order: sorted context codes, counts
    order: int

    @property
    def base(self) -> int:
        return len(self.alphabet)

    def with_order(self, order: int) -> MarkovModel:
        if not 0 <= order <= self.max_order:
            raise ValueError(f"order {order} is outside the counted 0..{self.max_order}")
        return MarkovModel(self.alphabet, self.max_order, self.alpha, self.joint, self.context, order)

    def log2_probs(self, windows: np.ndarray, first: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """log2 P(token | preceding tokens of its own window) for windows (w, n), positions >= first; and the mask
        of scored positions (target in the alphabet). Unscored positions hold 0."""
        windows = np.atleast_2d(windows)
        sym = symbols(windows, self.alphabet)
        run = valid_run(sym)
        before = np.zeros_like(run)
        before[:, 1:] = run[:, :-1]  # valid context length available before each position
        use = np.minimum(before, self.order)
        scored = sym >= 0
        scored[:, :first] = False
        out = np.zeros(windows.shape, dtype=np.float64)
        for j in range(self.order + 1):
            at = scored & (use == j)
            if at.any():
                ctx = context_codes(sym, j, self.base)[at]
                out[at] = self._log2_prob(j, ctx, sym[at])
        return out, scored

    def bits_per_token(self, windows: np.ndarray, first: int = 1) -> tuple[float, int]:
        """(total bits, number of scored tokens) over windows (w, n)."""
        lp, scored = self.log2_probs(windows, first)
        return float(-lp[scored].sum()), int(scored.sum())

    def _log2_prob(self, order: int, ctx: np.ndarray, sym: np.ndarray) -> np.ndarray:
        n_joint = lookup_counts(*self.joint[order], ctx * self.base + sym)
        n_ctx = lookup_counts(*self.context[order], ctx)
        return np.log2((n_joint + self.alpha) / (n_ctx + self.alpha * self.base))


def lookup_counts(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """counts[keys == query], 0 where the key was never seen."""
    if len(keys) == 0:
        return np.zeros(query.shape, dtype=np.int64)
    i = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    return np.where(keys[i] == query, counts[i], 0)


def count_orders(
    sequences: Sequence[np.ndarray], alphabet: np.ndarray, max_order: int, alpha: float = 0.5
) -> MarkovModel:
    """Count (context, next token) pairs of every order 0..max_order over 1-D token arrays."""
    alphabet = np.unique(np.asarray(alphabet, dtype=np.int64))
    base = len(alphabet)
    if base ** (max_order + 1) >= 2**62:
        raise ValueError(f"order {max_order} over {base} symbols overflows 64-bit context codes; lower it")
    joint, context = [], []
    for j in range(max_order + 1):
        codes = []
        for seq in sequences:
            sym = symbols(np.asarray(seq, dtype=np.int64), alphabet)
            keep = valid_run(sym) >= j + 1  # the target and its j predecessors are all valid
            codes.append((context_codes(sym, j, base) * base + sym)[keep])
        keys, counts = np.unique(np.concatenate(codes) if codes else np.zeros(0, np.int64), return_counts=True)
        joint.append((keys, counts))
        ctx_keys, inverse = np.unique(keys // base, return_inverse=True)
        context.append((ctx_keys, np.bincount(inverse, weights=counts, minlength=len(ctx_keys)).astype(np.int64)))
    return MarkovModel(alphabet, max_order, alpha, joint, context, max_order)


def fit_markov(
    sequences: Sequence[np.ndarray],
    alphabet: np.ndarray,
    max_order: int = 12,
    alpha: float = 0.5,
    validation_fraction: float = 0.1,
) -> MarkovModel:
    """Choose the order on the last `validation_fraction` of each training sequence (fitting on the rest), then
    count every order on all of it and return the model at the chosen order."""
    cut = [max(1, int(len(s) * (1 - validation_fraction))) for s in sequences]
    fit = count_orders([s[:c] for s, c in zip(sequences, cut)], alphabet, max_order, alpha)
    held = [s[c:] for s, c in zip(sequences, cut) if len(s) > c]
    best = min(range(max_order + 1), key=lambda k: bits_on_sequences(fit.with_order(k), held))
    return count_orders(sequences, alphabet, max_order, alpha).with_order(best)


def bits_on_sequences(model: MarkovModel, sequences: Sequence[np.ndarray]) -> float:
    """Mean bits per scored token over whole 1-D sequences (each scored from its second token)."""
    bits, n = 0.0, 0
    for seq in sequences:
        b, c = model.bits_per_token(np.asarray(seq, dtype=np.int64)[None, :])
        bits, n = bits + b, n + c
    return bits / n if n else math.inf
