"""Zero-shot variant effect scores from a genomic language model (docs/variants.md, "The windows and the formulas").

Causal models read each allele in its tile: the tile's bases before the variant, the allele, then window/4 bases
after it (`allele_reading`).
- `llr`: ln P(alt reading) - ln P(ref reading), summed over the tokens from the first one holding the variant (the
  tokens before it are the same in both and, the model being causal, score the same); N tokens are not scored.
  Positive: the model finds the alternative more likely.
- `cosine`, `l2`: 1 - cosine similarity, and Euclidean distance, of the mean last hidden state over those tokens.
All variants of a tile share one reference pass; each allele then computes only its own rows (`LongNet.extend`).

Masked models read each allele in a window centred on it (`allele_windows`):
- `log_odds` (same-length alleles): the tokens holding the variant masked in the reference window, then the sum over
  them of ln p(alt token) - ln p(ref token).
- `cosine`, `l2`: of the mean-pooled last hidden states of the two windows.
With `reverse_complement`, each score is the mean of the forward reading and the reverse-complement reading.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F

from genomenet.data.cache import PreparedGenome
from genomenet.data.variants import (
    SCORABLE,
    AllelePair,
    AlleleReading,
    Variant,
    VariantTile,
    allele_reading,
    allele_windows,
)
from genomenet.errors import ConfigError
from genomenet.inference.runner import InferenceModel, tile_tokens

SCORES = ("llr", "log_odds", "cosine", "l2")
TILE_TOKENS = 65_536
"""At most this many tokens of tiles per reference pass: their q, k, v are kept while the alleles continue them."""


@dataclass(frozen=True)
class ScoreOptions:
    window: int = 1024
    """Bases per window around a variant."""
    scores: tuple[str, ...] = ()
    """Which of SCORES; empty: the model objective's own (llr for causal, log_odds for masked) and cosine."""
    reverse_complement: bool = False
    """Average every score over both strands."""
    span: int | None = None
    """Causal models: bases after the allele that its scores cover (default window/4)."""


def default_scores(causal: bool) -> tuple[str, ...]:
    return ("llr", "cosine") if causal else ("log_odds", "cosine")


class VariantScorer:
    """Scores batches of variants with one model; every allele gets a value per score or a flag."""

    def __init__(self, runner: InferenceModel, genome: PreparedGenome, options: ScoreOptions) -> None:
        self.runner, self.genome, self.options = runner, genome, options
        self.scores = options.scores or default_scores(runner.causal)
        wrong = [s for s in self.scores if s not in SCORES or (s == "llr" and not runner.causal)
                 or (s == "log_odds" and runner.causal)]
        if wrong:
            kind = "causal" if runner.causal else "masked"
            raise ConfigError(f"--scores {wrong[0]} does not fit this {kind} LM (llr needs a causal model, log_odds "
                              f"a masked one; cosine and l2 fit both)")
        self.strands = ("+", "-") if options.reverse_complement else ("+",)
        if options.window < runner.k:
            raise ConfigError(f"--window {options.window} is shorter than one of the model's {runner.k}-mer tokens")
        if options.span is not None and options.span < 0:
            raise ConfigError(f"--span {options.span} must be >= 0")
        self.read = partial(allele_reading, span=options.span) if runner.causal else allele_windows

    def score(self, variants: list[Variant], flags: dict[int, str]) -> list[tuple[dict[str, list], list[str | None]]]:
        """Per variant: ({score: [value or None per ALT]}, [flag or None per ALT]). `flags`: record number -> a flag
        for the whole record (REF_MISMATCH)."""
        jobs, results = [], []
        for variant in variants:
            values = {s: [None] * len(variant.alts) for s in self.scores}
            marks: list[str | None] = [flags.get(variant.number)] * len(variant.alts)
            for a, (alt, kind) in enumerate(zip(variant.alts, variant.kinds, strict=True)):
                if marks[a] is None and kind not in SCORABLE:
                    marks[a] = kind.upper()
                if marks[a] is not None:
                    continue
                pairs = [self.read(self.genome, variant, alt, self.options.window, self.runner.tokenizer, s)
                         for s in self.strands]
                if any(isinstance(p, str) for p in pairs):
                    marks[a] = next(p for p in pairs if isinstance(p, str))
                    continue
                jobs.append((len(results), a, kind, pairs))
            results.append((values, marks))
        flat = [(p, kind) for _, _, kind, pairs in jobs for p in pairs]
        if self.runner.causal:
            scored = self._score_readings([p for p, _ in flat])
        else:
            scored = self._score_pairs([p for p, _ in flat], [kind for _, kind in flat])
        at = 0
        for i, a, _, pairs in jobs:
            for name in self.scores:
                values = [scored[at + j][name] for j in range(len(pairs))]
                results[i][0][name][a] = None if any(v is None for v in values) else float(np.mean(values))
            at += len(pairs)
        return results

    @torch.inference_mode()
    def _score_readings(self, readings: list[AlleleReading]) -> list[dict[str, float | None]]:
        """Causal scores: one reference pass per tile (its q, k, v kept), then only each allele's own rows
        continue from it (`LongNet.extend`); models without a cached-rows path run each reading whole."""
        by_tile: dict[VariantTile, list[int]] = {}
        for i, reading in enumerate(readings):
            by_tile.setdefault(reading.tile, []).append(i)
        tiles = sorted(by_tile, key=lambda t: (t.chrom, t.strand, t.start))
        out: list[dict[str, float | None]] = [{} for _ in readings]
        per_pass = max(1, min(self.runner.batch_size, TILE_TOKENS // max(1, self.options.window // self.runner.k)))
        for first in range(0, len(tiles), per_pass):
            group = tiles[first:first + per_pass]
            tile_pass = TilePass.run(self.runner, [tile_tokens(self.genome, t, self.runner.tokenizer) for t in group])
            jobs = [(slot, i) for slot, tile in enumerate(group) for i in by_tile[tile]]
            for j, ref, alt in tile_pass.continue_readings(self.runner, [(slot, readings[i]) for slot, i in jobs]):
                i = jobs[j][1]
                llr = float(alt.logp.double().sum() - ref.logp.double().sum())  # float64: spans of thousands of tokens
                scores = {"llr": llr, "cosine": float(1 - F.cosine_similarity(ref.pooled, alt.pooled, dim=0)),
                          "l2": float((ref.pooled - alt.pooled).norm())}
                out[i] = {name: scores.get(name) for name in self.scores}
        return out

    @torch.inference_mode()
    def _score_pairs(self, pairs: list[AllelePair], kinds: list[str]) -> list[dict[str, float | None]]:
        """Masked-LM scores of allele pairs (centred windows), `batch_size` windows per forward pass (a pair is two
        windows)."""
        out: list[dict[str, float | None]] = []
        step = max(1, self.runner.batch_size // 2)
        for start in range(0, len(pairs), step):
            batch = pairs[start:start + step]
            ids, padding = self._batch([s for p in batch for s in (p.ref, p.alt)])
            with self.runner.autocast():
                hidden = self.runner.hidden(ids, padding)
            hidden = hidden.float()
            real = ids != self.runner.tokenizer.pad_id
            pooled = (hidden * real[..., None]).sum(1) / real.sum(1, keepdim=True)   # (2b, d)
            for j, pair in enumerate(batch):
                scores: dict[str, float | None] = {}
                if "log_odds" in self.scores:
                    scores["log_odds"] = self._log_odds(pair) if kinds[start + j] != "indel" else None
                scores["cosine"] = float(1 - F.cosine_similarity(pooled[2 * j], pooled[2 * j + 1], dim=0))
                scores["l2"] = float((pooled[2 * j] - pooled[2 * j + 1]).norm())
                out.append({s: scores.get(s) for s in self.scores})
        return out

    def _log_odds(self, pair: AllelePair) -> float:
        tok = self.runner.tokenizer
        masked = pair.ref.copy()
        masked[pair.variant_tokens] = tok.mask_id
        ids, _ = self._batch([masked])
        with self.runner.autocast():
            logp = torch.log_softmax(self.runner.logits(ids, None).float()[0], -1)  # (n, vocab)
        held = torch.as_tensor(pair.variant_tokens, device=ids.device)
        ref = torch.as_tensor(pair.ref[pair.variant_tokens], device=ids.device)
        alt = torch.as_tensor(pair.alt[pair.variant_tokens], device=ids.device)
        return float((logp[held, alt] - logp[held, ref]).sum())

    def _batch(self, seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Right-padded ids (b, n) and the padding mask (None when all are the same length)."""
        n = max(len(s) for s in seqs)
        ids = np.full((len(seqs), n), self.runner.tokenizer.pad_id, dtype=np.int64)
        for i, s in enumerate(seqs):
            ids[i, :len(s)] = s
        ids_t = torch.from_numpy(ids).to(self.runner.device)
        padding = ids_t == self.runner.tokenizer.pad_id
        return ids_t, (padding if bool(padding.any()) else None)


@dataclass
class AlleleRows:
    """What the scores read from one allele's rows: ln p of each of its tokens (N tokens 0) and their mean hidden
    state."""

    logp: torch.Tensor
    pooled: torch.Tensor


@dataclass
class TilePass:
    """The reference pass of a batch of tiles: token ids, hidden states, ln p of each next token, and the q, k,
    v every block left (None for a model without a cached-rows path)."""

    ids: torch.Tensor
    hidden: torch.Tensor
    logp: torch.Tensor
    cache: list | None

    @classmethod
    def run(cls, runner: InferenceModel, tiles: list[np.ndarray]) -> TilePass:
        ids = torch.from_numpy(np.stack(tiles)).to(runner.device)
        with runner.autocast():
            if runner.model.can_extend:
                hidden, cache = runner.model.prefill(ids)
            else:
                hidden, cache = runner.hidden(ids, None), None
        hidden = hidden.float()  # the head and the softmax in float32: an LLR sums hundreds of log-probabilities
        return cls(ids, hidden, next_token_logp(runner, hidden, ids), cache)

    def continue_readings(self, runner: InferenceModel, jobs: list[tuple[int, AlleleReading]], tokens: int = 16_384):
        """(slot, reading) -> (index, reference rows, alternative rows), in batches of about `tokens` rows.
        A reference allele inside its tile is read from the tile pass; anything else continues from its prefix."""
        rows: list[tuple[int, np.ndarray, int, str]] = []   # (slot, tokens from `first`, `first`, job & allele)
        tiles = self.ids.cpu().numpy()
        for j, (slot, reading) in enumerate(jobs):
            inside = reading.first + len(reading.ref) <= tiles.shape[1] and np.array_equal(
                tiles[slot, reading.first:reading.first + len(reading.ref)], reading.ref)
            if not inside:
                rows.append((slot, reading.ref, reading.first, f"{j}:ref"))
            rows.append((slot, reading.alt, reading.first, f"{j}:alt"))
        continued = self._continue(runner, rows, tokens)
        for j, (slot, reading) in enumerate(jobs):
            ref = continued.get(f"{j}:ref") or self.rows_in_tile(slot, reading.first, len(reading.ref))
            yield j, ref, continued[f"{j}:alt"]

    def rows_in_tile(self, slot: int, first: int, count: int) -> AlleleRows:
        return AlleleRows(self.logp[slot, first - 1:first - 1 + count], self.hidden[slot, first:first + count].mean(0))

    def _continue(self, runner: InferenceModel, rows: list, tokens: int) -> dict[str, AlleleRows]:
        out: dict[str, AlleleRows] = {}
        order = sorted(range(len(rows)), key=lambda r: len(rows[r][1]))
        batch: list[int] = []
        for r in order + [None]:
            if r is not None and (not batch or (len(batch) + 1) * len(rows[r][1]) <= tokens):
                batch.append(r)
                continue
            if batch:
                out.update(self._continue_batch(runner, [rows[b] for b in batch]))
            batch = [r] if r is not None else []
        return out

    def _continue_batch(self, runner: InferenceModel, rows: list) -> dict[str, AlleleRows]:
        slots = torch.as_tensor([slot for slot, *_ in rows], device=self.ids.device)
        firsts = torch.as_tensor([first for _, _, first, _ in rows], device=self.ids.device)
        lengths = [len(ids) for _, ids, _, _ in rows]
        width = max(lengths)
        ids = np.full((len(rows), width), runner.tokenizer.pad_id, dtype=np.int64)
        for i, (_, tokens, _, _) in enumerate(rows):
            ids[i, :len(tokens)] = tokens
        ids_t = torch.from_numpy(ids).to(self.ids.device)
        with runner.autocast():
            if self.cache is not None:
                hidden = runner.model.extend(ids_t, firsts, torch.as_tensor(lengths, device=ids_t.device),
                                             self.cache, slots)
            else:  # run each reading whole: the tile's tokens before it, then its own
                whole = torch.cat([self.ids[slots], torch.full_like(ids_t, runner.tokenizer.pad_id)], 1)
                for i, first in enumerate(firsts.tolist()):
                    whole[i, first:first + width] = ids_t[i]
                    whole[i, first + width:] = runner.tokenizer.pad_id
                padding = whole == runner.tokenizer.pad_id
                hidden = runner.hidden(whole, padding if bool(padding.any()) else None)
                hidden = torch.stack([hidden[i, f:f + width] for i, f in enumerate(firsts.tolist())])
        hidden = hidden.float()
        # the first token is scored from the shared prefix's last row, the rest from the allele's own rows
        before = self.hidden[slots, firsts - 1][:, None]
        logp = next_token_logp(runner, torch.cat([before, hidden], 1), torch.cat([ids_t[:, :1], ids_t], 1))
        return {key: AlleleRows(logp[i, :n], hidden[i, :n].mean(0))
                for i, ((_, _, _, key), n) in enumerate(zip(rows, lengths, strict=True))}


def next_token_logp(runner: InferenceModel, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """ln p(token t+1 | tokens <= t) (b, n-1) from float32 hidden states; 0 where token t+1 is not a real k-mer (N,
    padding)."""
    logits = F.linear(hidden, runner.model.lm_head.weight.float())
    logp = torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]
    return logp * (ids[:, 1:] < runner.tokenizer.n_id)


def pair_llr(token_logp: torch.Tensor, ids: torch.Tensor) -> float:
    """ln P(alt) - ln P(ref) of a (ref, alt) pair of windows from their per-token log-probabilities (2, n-1), over the
    tokens from the first that differs to the end (the shared prefix scores the same under a causal model)."""
    differ = (ids[0] != ids[1]).nonzero()
    first = int(differ[0]) if len(differ) else ids.shape[1]
    total = token_logp[:, max(first, 1) - 1:].sum(1)   # token_logp[:, t - 1] scores token t
    return float(total[1] - total[0])
