"""`genomenet track`: the model's per-base information content, -log2 p(observed base), as a genome browser track.

Causal model: p is the prediction from the bases before it on the strand read (the first token of a region has no
prediction and is left out). Masked model: p is the prediction with that token masked, one forward pass per token
(exact, and about window-tokens times the cost of a causal track: for short regions). For k-mer tokens the k-mer's
probability is split over its bases by the chain rule, p(b1) p(b2 | b1) ... p(bk | b1..bk-1), each a sum of k-mer
probabilities, so a token's bases add up to its -log2 p. The entropy track is that of the same per-base prediction,
over the four bases (renormalised), in bits. Bases in N tokens get no value (a gap in the track).

Regions are read on the forward strand, the reverse complement (`strand='-'`) or both (the mean of the two). Output:
bedGraph with a track line (IGV, UCSC), runs of equal rounded values merged; bigWig when OUT ends in .bw or .bigWig
and pyBigWig is installed. Interrupted runs resume like `genomenet embed` (parts beside OUT).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from genomenet.data.cache import prepare
from genomenet.data.intervals import Region
from genomenet.errors import ConfigError, InputFileError
from genomenet.inference.chunks import chunk_outputs, plan_chunks, resolve_tiling
from genomenet.inference.parts import PartStore, join_workers, run_chunks
from genomenet.inference.regions import file_sha256, regions_sha256, target_regions
from genomenet.inference.runner import BaseOutputs, InferenceModel, weights_sha256

CHUNK_BASES = 1 << 20
DECIMALS = 3


@dataclass(frozen=True)
class TrackOptions:
    """What `genomenet track` computes; all of it goes into the resume manifest."""

    strand: str = "+"
    """'+' (forward), '-' (reverse complement) or 'both' (mean of the two)."""
    entropy: bool = False
    """Also write the entropy of each per-base prediction (OUT with '.entropy' before its extension)."""
    window: int = 0
    """Bases per model window (0: the model's training window)."""
    context: int = -1
    """Least context per base (as for embed); -1: window / 4 (causal) or / 8 (masked)."""
    flank: int = 0
    """Bases on each side of a region read as context only (no values written there)."""


def base_information(log_probs: Tensor, targets: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Per-base information content and entropy in bits, (b, n, k) each, of k-mer predictions.

    log_probs: (b, n, vocab) log-softmax over the whole vocabulary; targets: (b, n) observed k-mer ids (< 4**k).
    Base j of a k-mer gets -log2 of the summed probability of the k-mers sharing its first j bases over that of its
    first j - 1 (the first base: over 1), so a k-mer's bases add up to its -log2 p.
    """
    probs = log_probs[..., : 4**k].double().exp()  # (b, n, 4**k), real k-mers only
    left, ic, ent = torch.ones_like(probs[..., 0]), [], []
    for j in range(k):
        per_base = probs.unflatten(-1, (4, 4 ** (k - j - 1))).sum(-1)  # (b, n, 4): the next base, given the prefix
        digit = (targets // 4 ** (k - j - 1)) % 4
        chosen = per_base.gather(-1, digit[..., None]).squeeze(-1)
        ic.append(-torch.log2(chosen.clamp_min(1e-300) / left.clamp_min(1e-300)))
        q = per_base / per_base.sum(-1, keepdim=True).clamp_min(1e-300)
        ent.append(-(q * torch.log2(q.clamp_min(1e-300))).sum(-1))
        probs = probs.unflatten(-1, (4, 4 ** (k - j - 1))).gather(
            -2, digit[..., None, None].expand(*digit.shape, 1, 4 ** (k - j - 1))).squeeze(-2)
        left = chosen
    return torch.stack(ic, -1).float(), torch.stack(ent, -1).float()


def information_outputs(runner: InferenceModel) -> BaseOutputs:
    """Per-base (information content, entropy) of each window, NaN where there is no prediction."""
    tok, k = runner.tokenizer, runner.k

    def outputs(ids: Tensor, real: Tensor) -> Tensor:
        padding = ids == tok.pad_id
        mask = padding if bool(padding.any()) else None
        if runner.causal:
            log_probs = torch.log_softmax(runner.logits(ids, mask).float(), -1)[:, :-1]
            targets, scored = ids[:, 1:], real[:, 1:]
            ic, ent = base_information(log_probs, targets.clamp_max(4**k - 1), k)
            first = ic.new_full((ic.shape[0], 1, k), math.nan)  # (b, 1, k) even for one-token windows
            ic, ent = torch.cat([first, ic], 1), torch.cat([first, ent], 1)
            scored = torch.cat([scored.new_zeros(scored.shape[0], 1), scored], 1)
        else:
            log_probs = masked_log_probs(runner, ids, mask)
            ic, ent = base_information(log_probs, ids.clamp_max(4**k - 1), k)
            scored = real
        nan = torch.full_like(ic, math.nan)
        ic, ent = torch.where(scored[..., None], ic, nan), torch.where(scored[..., None], ent, nan)
        return torch.stack([ic.flatten(1), ent.flatten(1)], -1)  # (b, n * k, 2)

    return outputs


def masked_log_probs(runner: InferenceModel, ids: Tensor, mask: Tensor | None) -> Tensor:
    """Log-probabilities (b, n, vocab) of each token with only that token masked: one forward pass per token."""
    b, n = ids.shape
    out = torch.empty(b, n, runner.model.cfg.vocab_size, device=ids.device)
    for row in range(b):
        for first in range(0, n, runner.batch_size):
            positions = torch.arange(first, min(n, first + runner.batch_size), device=ids.device)
            which = torch.arange(len(positions), device=ids.device)
            inputs = ids[row].repeat(len(positions), 1)
            inputs[which, positions] = runner.tokenizer.mask_id
            pad = None if mask is None else mask[row].repeat(len(positions), 1)
            logits = runner.logits(inputs, pad).float()
            out[row, positions] = torch.log_softmax(logits[which, positions], -1)
    return out


def merged_regions(regions: list[Region], order: list[str]) -> list[Region]:
    """Regions sorted in FASTA order and merged where they overlap: a track holds one value per base."""
    rank = {name: i for i, name in enumerate(order)}
    merged: list[Region] = []
    for r in sorted(regions, key=lambda r: (rank[r.chrom], r.start, r.end)):
        if merged and merged[-1].chrom == r.chrom and r.start <= merged[-1].end:
            last = merged.pop()
            r = Region(r.chrom, last.start, max(last.end, r.end), last.name, "+")
        merged.append(Region(r.chrom, r.start, r.end, r.name, "+"))
    return merged


def track(
    model: str | Path,
    fasta: str | Path,
    out: str | Path,
    regions: str | Path | None = None,
    options: TrackOptions | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    sequence_parallel: int = 1,
) -> list[Path]:
    """Write the information-content track (and the entropy track) of `fasta` or its BED `regions`; returns the
    files written. Resumable, and split over processes, like `embed`."""
    out, options = Path(out), options or TrackOptions()
    outs = output_paths(out, options.entropy)
    runner = InferenceModel.load(model, device, precision, batch_size)
    if options.strand not in ("+", "-", "both"):
        raise ConfigError(f"--strand {options.strand!r}: choose +, - or both")
    tiling = resolve_tiling(runner, options.window, options.context, options.flank)
    genome = prepare(fasta, cache_dir, progress=progress)
    records = target_regions(genome, regions, runner.k)
    targets = merged_regions(records, genome.names)
    manifest = {"command": "track", "model_sha256": weights_sha256(runner.model), "fasta_sha256": file_sha256(fasta),
                "regions_sha256": regions_sha256(records) if regions else None,
                "options": asdict(options) | {"window": tiling.window, "context": tiling.context}}
    chunks = plan_chunks(genome, targets, tiling, max(tiling.window, CHUNK_BASES))
    parts = PartStore(out, manifest)
    parts.open()
    workers = join_workers(sequence_parallel, runner.device)
    runner.start(workers.group, tiling.window)
    strands = {"+": ("+",), "-": ("-",), "both": ("+", "-")}[options.strand]
    outputs = information_outputs(runner)

    def compute(i: int) -> dict[str, np.ndarray]:
        pieces = chunk_outputs(runner, genome, chunks[i], targets, tiling, outputs, 2, lambda piece: strands)
        return {"chroms": np.array([targets[p.region].chrom for p, _, _ in pieces]),
                "starts": np.array([p.start for p, _, _ in pieces]),
                "lengths": np.array([p.end - p.start for p, _, _ in pieces]),
                "values": np.concatenate([values for _, values, _ in pieces])}

    sizes = [c.bases for c in chunks]
    if not run_chunks(parts, sizes, workers, compute, f"track {Path(fasta).name}", progress):
        return outs
    write_tracks(outs, parts, len(chunks), genome.lengths, "/".join(Path(model).resolve().parts[-2:]))
    parts.remove()
    return outs


def output_paths(out: Path, entropy: bool) -> list[Path]:
    """OUT, and OUT with '.entropy' before its extension; a one-line error for an extension that is not a track."""
    suffix = out.suffix.lower()
    if suffix not in (".bedgraph", ".bg", ".bw", ".bigwig"):
        raise ConfigError(f"--out {out}: give a .bedGraph (or .bw / .bigWig) file name")
    if suffix in (".bw", ".bigwig"):
        try:
            import pyBigWig  # noqa: F401
        except ImportError:
            raise ConfigError(f"--out {out}: bigWig output needs pyBigWig (pip install pyBigWig); "
                              "or write .bedGraph") from None
    if out.parent and not out.parent.is_dir():
        raise InputFileError(f"--out {out}: folder {out.parent} does not exist")
    outs = [out] + ([out.with_name(f"{out.stem}.entropy{out.suffix}")] if entropy else [])
    for path in outs:
        if path.is_dir():
            raise InputFileError(f"--out {out}: {path} is a folder; give a file name")
    return outs


def write_tracks(outs: list[Path], parts: PartStore, n_chunks: int, lengths: dict[str, int], model: str) -> None:
    """Assemble the parts (in genomic order) into each track file, via temporary files renamed at the end."""
    what = [("information", "information content (bits) of the observed base"),
            ("entropy", "entropy (bits) of the predicted base")]
    writers = [track_writer(out, f"{model} {name}", text, lengths) for out, (name, text) in zip(outs, what)]
    for i in range(n_chunks):
        part = parts.load(i)
        offsets = np.r_[0, np.cumsum(part["lengths"])].tolist()
        for j, (chrom, start) in enumerate(zip(part["chroms"].tolist(), part["starts"].tolist())):
            for channel, writer in enumerate(writers):
                writer.add(chrom, start, part["values"][offsets[j] : offsets[j + 1], channel])
    for writer in writers:
        writer.close()


class BedGraphWriter:
    """bedGraph text: a track line, then `chrom start end value` for runs of equal values (rounded); NaN is a gap."""

    def __init__(self, out: Path, name: str, description: str):
        self.out, self.tmp = out, out.with_name(f".{out.name}.tmp")
        self.handle = open(self.tmp, "w")
        self.handle.write(f'track type=bedGraph name="{name}" description="{description}" visibility=full '
                          "autoScale=on\n")

    def add(self, chrom: str, start: int, values: np.ndarray) -> None:
        for run_start, run_end, value in value_runs(values):
            self.handle.write(f"{chrom}\t{start + run_start}\t{start + run_end}\t{value:.{DECIMALS}f}\n")

    def close(self) -> None:
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.out)


class BigWigWriter:
    """bigWig through pyBigWig: the same runs as the bedGraph, binary and indexed."""

    def __init__(self, out: Path, lengths: dict[str, int]):
        import pyBigWig

        self.out, self.tmp = out, out.with_name(f".{out.name}.tmp")
        self.bw = pyBigWig.open(str(self.tmp), "w")
        self.bw.addHeader(list(lengths.items()))

    def add(self, chrom: str, start: int, values: np.ndarray) -> None:
        runs = value_runs(values)
        if runs:
            starts, ends, vals = (list(x) for x in zip(*runs))
            self.bw.addEntries([chrom] * len(runs), [start + s for s in starts], ends=[start + e for e in ends],
                               values=[float(v) for v in vals])

    def close(self) -> None:
        self.bw.close()
        os.replace(self.tmp, self.out)


def track_writer(out: Path, name: str, description: str, lengths: dict[str, int]):
    if out.suffix.lower() in (".bw", ".bigwig"):
        return BigWigWriter(out, lengths)
    return BedGraphWriter(out, name, description)


def value_runs(values: np.ndarray) -> list[tuple[int, int, float]]:
    """(start, end, value) runs of equal values rounded to DECIMALS, NaN left out."""
    rounded = np.round(values.astype(np.float64), DECIMALS)
    keep = ~np.isnan(rounded)
    change = np.flatnonzero(np.r_[True, (rounded[1:] != rounded[:-1]) | (keep[1:] != keep[:-1])])
    ends = np.r_[change[1:], len(rounded)]
    return [(int(s), int(e), float(rounded[s])) for s, e in zip(change, ends) if keep[s]]
