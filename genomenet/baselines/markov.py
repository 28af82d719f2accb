"""Order-k Markov model over token ids: the baseline a genomic language model must beat.

Counts are vectorised with numpy: a context of j symbols is one integer (base-A digits), and the counts of each order
are a table of (context, next symbol) codes: dense (indexed by code) when A ** (order + 1) is small, else sorted codes
looked up with `np.searchsorted`. Probabilities use add-alpha smoothing over the alphabet. Tokens outside the alphabet
(N, padding) are never predicted and break contexts: a position whose j previous tokens are not all in the alphabet
uses the longest context that is.

Counting streams over the training tokens a chunk at a time (each chunk read with the `max_order` tokens before it,
so the counts are exactly those of the whole sequence), into tables whose size depends on the alphabet and the order
only: a dense table of A ** (order + 1) counts when that is small, else a sorted (code, count) table of the codes seen.
A whole genome is never held as tokens or codes: sequences may be lazy (anything with `len` and slicing).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

CHUNK_TOKENS = 1 << 20
"""Tokens counted or scored at a time: the working memory of counting, whatever the length of the training data."""
DENSE_LIMIT = 1 << 26
"""Orders whose A ** (order + 1) (context, symbol) codes are at most this many are counted in a dense table."""


class TokenSequence(Protocol):
    """1-D token ids read a slice at a time: a numpy array, a memory map, or a view that encodes on slicing."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice) -> np.ndarray: ...


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
    joint: list[CountTable]  # per order: counts of context * A + symbol codes
    context: list[CountTable]  # per order: counts of context codes
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
        n_joint = self.joint[order].lookup(ctx * self.base + sym)
        n_ctx = self.context[order].lookup(ctx)
        return np.log2((n_joint + self.alpha) / (n_ctx + self.alpha * self.base))


@dataclass
class CountTable:
    """Counts of integer codes: dense (`counts[code]`, `keys` None), or sparse (sorted `keys` and their `counts`)."""

    keys: np.ndarray | None
    counts: np.ndarray

    def lookup(self, query: np.ndarray) -> np.ndarray:
        """The count of each code in query, 0 where it was never seen."""
        return self.counts[query] if self.keys is None else lookup_counts(self.keys, self.counts, query)

    def seen(self) -> tuple[np.ndarray, np.ndarray]:
        """The codes counted at least once (sorted) and their counts."""
        if self.keys is None:
            keys = np.flatnonzero(self.counts)
            return keys, self.counts[keys]
        return self.keys, self.counts

    def by_context(self, base: int) -> CountTable:
        """Counts summed over the last base-`base` digit of the codes (joint counts -> context counts)."""
        if self.keys is None:
            return CountTable(None, self.counts.reshape(-1, base).sum(axis=1))
        return CountTable(*summed_counts([(self.keys // base, self.counts)]))


def lookup_counts(keys: np.ndarray, counts: np.ndarray, query: np.ndarray) -> np.ndarray:
    """counts[keys == query], 0 where the key was never seen."""
    if len(keys) == 0:
        return np.zeros(query.shape, dtype=np.int64)
    i = np.clip(np.searchsorted(keys, query), 0, len(keys) - 1)
    return np.where(keys[i] == query, counts[i], 0)


class OrderCounts:
    """Running counts of the (context, symbol) codes of one order, in memory bounded by the alphabet and the order:
    a dense table of all A ** (order + 1) codes when that is at most `dense_limit`, else a sorted (code, count) table
    of the codes seen, to which each chunk's counts are merged (in batches, so merging costs O(n log n) in all)."""

    def __init__(self, size: int, dense_limit: int = DENSE_LIMIT) -> None:
        self.size = size
        self.table = np.zeros(size, dtype=np.int64) if size <= dense_limit else None
        self.keys, self.counts = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []

    def add(self, codes: np.ndarray) -> None:
        """Count each code once per occurrence."""
        if self.table is not None and self.size <= 4 * len(codes):
            self.table += np.bincount(codes, minlength=self.size)
            return
        keys, counts = np.unique(codes, return_counts=True)
        if self.table is not None:
            self.table[keys] += counts
            return
        self.pending.append((keys, counts))
        if sum(len(k) for k, _ in self.pending) >= len(self.keys):
            self.keys, self.counts = summed_counts([(self.keys, self.counts), *self.pending])
            self.pending = []

    def result(self) -> CountTable:
        """The counts so far; a dense table is the running one, not a copy (counting more changes it)."""
        if self.table is not None:
            return CountTable(None, self.table)
        if self.pending:
            self.keys, self.counts = summed_counts([(self.keys, self.counts), *self.pending])
            self.pending = []
        return CountTable(self.keys, self.counts)


def summed_counts(tables: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (key, count) tables merged into one, the counts of equal keys added."""
    keys = np.concatenate([k for k, _ in tables])
    counts = np.concatenate([c for _, c in tables]).astype(np.int64, copy=False)
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    if len(keys) == 0:
        return keys.astype(np.int64), counts
    starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
    return keys[starts], np.add.reduceat(counts, starts)


class MarkovCounter:
    """Counts of every order 0..max_order, fed ranges of target positions of sequences, a chunk at a time."""

    def __init__(
        self, alphabet: np.ndarray, max_order: int, chunk_tokens: int = CHUNK_TOKENS, dense_limit: int = DENSE_LIMIT
    ) -> None:
        self.alphabet = np.unique(np.asarray(alphabet, dtype=np.int64))
        self.base, self.max_order, self.chunk_tokens = len(self.alphabet), max_order, chunk_tokens
        if self.base ** (max_order + 1) >= 2**62:
            raise ValueError(f"order {max_order} over {self.base} symbols overflows 64-bit context codes; lower it")
        self.orders = [OrderCounts(self.base ** (j + 1), dense_limit) for j in range(max_order + 1)]

    def add(self, seq: TokenSequence, start: int = 0, end: int | None = None) -> None:
        """Count the targets at positions [start, end) of seq, each with up to max_order tokens before it (read from
        seq, before `start` too): counting [0, c) then [c, n) gives the counts of [0, n)."""
        end = len(seq) if end is None else min(end, len(seq))
        for lo in range(start, end, self.chunk_tokens):
            hi = min(lo + self.chunk_tokens, end)
            before = min(self.max_order, lo)
            sym = symbols(np.asarray(seq[lo - before : hi], dtype=np.int64), self.alphabet)
            pad = np.full(self.max_order - before, -1, dtype=np.int64)  # no token before the sequence's start
            self._add_chunk(np.concatenate([pad, sym]))

    def _add_chunk(self, sym: np.ndarray) -> None:
        """Count the targets of sym after its first max_order symbols (their context)."""
        m, base = self.max_order, self.base
        target, run = sym[m:], valid_run(sym)[m:]
        context = np.zeros(len(target), dtype=np.int64)  # code of the j symbols before each target
        for j, counts in enumerate(self.orders):
            if j:
                context = context * base + np.maximum(sym[m - j : len(sym) - j], 0)
            keep = run >= j + 1  # the target and its j predecessors are all valid
            counts.add((context * base + target)[keep])

    def model(self, alpha: float = 0.5) -> MarkovModel:
        """The counts so far as a model at the highest order. It reads the dense tables in place: counting more
        changes it too."""
        joint = [counts.result() for counts in self.orders]
        context = [table.by_context(self.base) for table in joint]
        return MarkovModel(self.alphabet, self.max_order, alpha, joint, context, self.max_order)


def count_orders(
    sequences: Sequence[TokenSequence],
    alphabet: np.ndarray,
    max_order: int,
    alpha: float = 0.5,
    chunk_tokens: int = CHUNK_TOKENS,
    dense_limit: int = DENSE_LIMIT,
) -> MarkovModel:
    """Count (context, next token) pairs of every order 0..max_order over 1-D token sequences."""
    counter = MarkovCounter(alphabet, max_order, chunk_tokens, dense_limit)
    for seq in sequences:
        counter.add(seq)
    return counter.model(alpha)


def fit_markov(
    sequences: Sequence[TokenSequence],
    alphabet: np.ndarray,
    max_order: int = 12,
    alpha: float = 0.5,
    validation_fraction: float = 0.1,
    chunk_tokens: int = CHUNK_TOKENS,
    dense_limit: int = DENSE_LIMIT,
) -> MarkovModel:
    """Choose the order on the last `validation_fraction` of each training sequence (fitting on the rest), then
    count every order on all of it and return the model at the chosen order."""
    cut = [max(1, int(len(s) * (1 - validation_fraction))) for s in sequences]
    counter = MarkovCounter(alphabet, max_order, chunk_tokens, dense_limit)
    for seq, c in zip(sequences, cut, strict=True):
        counter.add(seq, 0, c)
    held = [(s, c, len(s)) for s, c in zip(sequences, cut, strict=True) if len(s) > c]
    best = best_order(counter.model(alpha), held, chunk_tokens)  # before the tail is counted into the same tables
    for seq, c, n in held:
        counter.add(seq, c, n)  # the tail: with the head already counted, the counts of the whole
    return counter.model(alpha).with_order(best)


def best_order(model: MarkovModel, spans: Sequence[tuple[TokenSequence, int, int]], chunk_tokens: int) -> int:
    """The order 0..max_order with the fewest bits per token on spans (`bits_on_spans`)."""
    return min(range(model.max_order + 1), key=lambda k: bits_on_spans(model.with_order(k), spans, chunk_tokens))


def bits_on_sequences(model: MarkovModel, sequences: Sequence[TokenSequence]) -> float:
    """Mean bits per scored token over whole 1-D sequences (each scored from its second token)."""
    return bits_on_spans(model, [(s, 0, len(s)) for s in sequences])


def bits_on_spans(
    model: MarkovModel, spans: Sequence[tuple[TokenSequence, int, int]], chunk_tokens: int = CHUNK_TOKENS
) -> float:
    """Mean bits per scored token over spans (sequence, start, end), each scored as one window from its second token
    (its context never reaches before `start`), a chunk at a time."""
    bits, n = 0.0, 0
    for seq, start, end in spans:
        for lo in range(start, end, chunk_tokens):
            before = min(model.order, lo - start)  # the chunk's context, inside the span
            chunk = np.asarray(seq[lo - before : min(lo + chunk_tokens, end)], dtype=np.int64)
            b, c = model.bits_per_token(chunk[None, :], first=before if lo > start else 1)
            bits, n = bits + b, n + c
    return bits / n if n else math.inf
