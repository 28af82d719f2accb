"""`genomenet embed`: embeddings of whole chromosomes or BED regions into one HDF5 file with coordinates.

Rows of the output are pooled per-base hidden states: one row per region (`per="region"`), one per tile of `window`
bases of each region (`per="tile"`), or one per position (`per="position"`), optionally averaged in bins of
`bin_size` bases. Tiles and bins run in the region's reading direction: from its end on the minus strand. Bases in N
tokens are left out of the pooling; a row with no real base is NaN. The file layout is in `genomenet.inference.store`.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

import genomenet
from genomenet.data.cache import prepare
from genomenet.data.intervals import Region
from genomenet.errors import ConfigError, InputFileError
from genomenet.inference import store
from genomenet.inference.chunks import Piece, Tiling, chunk_outputs, plan_chunks, resolve_tiling
from genomenet.inference.parts import PartStore, join_workers, run_chunks
from genomenet.inference.regions import file_sha256, regions_sha256, target_regions
from genomenet.inference.runner import InferenceModel, hidden_outputs, weights_sha256

CHUNK_BYTES = 64 << 20
"""Per-base outputs a chunk of work holds in memory (float32 bases x width); also sets how often parts are saved."""


@dataclass(frozen=True)
class EmbedOptions:
    """What `genomenet embed` computes; everything here goes into the output file and its resume manifest."""

    per: Literal["region", "tile", "position"] = "region"
    """One row per region, per tile of `window` bases, or per position (in bins of `bin_size` bases)."""
    bin_size: int = 1
    """Bases per row with per='position' (1: every base); set to the window for per='tile'."""
    pooling: Literal["mean", "max"] = "mean"
    """How a row's per-base vectors are pooled."""
    layer: int = -1
    """Hidden states after this many blocks (0: token embeddings; -1: after the last block and the final norm)."""
    reverse_complement: Literal["none", "average"] = "none"
    """'average': mean of the per-base outputs read on both strands (each base in genomic position)."""
    window: int = 0
    """Bases per model window (0: the model's training window)."""
    context: int = -1
    """Least context per base: left bases (causal model) or bases each side (masked); -1: window / 4 or / 8."""
    dtype: Literal["float32", "float16"] = "float32"
    """Stored precision of the embeddings."""
    flank: int = 0
    """Bases on each side of a region that the model reads as context (not pooled); 0: the region alone."""


def resolve_options(options: EmbedOptions, runner: InferenceModel) -> EmbedOptions:
    """Fill in the window and context the model implies, and check what cannot work (one-line ConfigError)."""
    tiling = resolve_tiling(runner, options.window, options.context, options.flank)
    if options.per not in ("region", "tile", "position") or options.pooling not in ("mean", "max"):
        raise ConfigError(f"--per {options.per!r} / --pooling {options.pooling!r}: choose region, tile or position; "
                          "mean or max")
    if options.dtype not in ("float32", "float16") or options.reverse_complement not in ("none", "average"):
        raise ConfigError(f"--dtype {options.dtype!r} / --reverse-complement {options.reverse_complement!r}: "
                          "choose float32 or float16; none or average")
    if options.bin_size < 1:
        raise ConfigError(f"--bin-size {options.bin_size} must be >= 1")
    if not -1 <= options.layer <= runner.model.cfg.n_layers:
        raise ConfigError(f"--layer {options.layer}: this model has layers 0..{runner.model.cfg.n_layers} (-1: last)")
    layer = runner.model.cfg.n_layers if options.layer == -1 else options.layer
    bin_size = tiling.window if options.per == "tile" else options.bin_size if options.per == "position" else 1
    return EmbedOptions(options.per, bin_size, options.pooling, layer, options.reverse_complement,
                        tiling.window, tiling.context, options.dtype, options.flank)


def rows_of(region: Region, options: EmbedOptions) -> int:
    return 1 if options.per == "region" else -(-region.length // options.bin_size)


def tiling_of(options: EmbedOptions, runner: InferenceModel) -> Tiling:
    return Tiling(options.window, options.context, runner.causal, runner.k, options.flank)


def strands_of(options: EmbedOptions):
    """The strands each piece is read on: its own, and the other one too when averaging over both."""
    def strands(piece: Piece) -> tuple[str, ...]:
        other = "-" if piece.strand == "+" else "+"
        return (piece.strand, other) if options.reverse_complement == "average" else (piece.strand,)

    return strands


def pool_piece(values: np.ndarray, real: np.ndarray, piece: Piece, region: Region, row0: int, o: EmbedOptions):
    """Partial rows of a piece: row ids, pooled sums (or maxima) over its real bases, and their counts."""
    if piece.strand == "-":  # reading order: the region's end first
        values, real = values[::-1], real[::-1]
        first = region.end - piece.end
    else:
        first = piece.start - region.start
    offsets = np.arange(first, first + len(real))
    bins = np.zeros(len(real), dtype=np.int64) if o.per == "region" else offsets // o.bin_size
    rows = np.unique(bins)
    pooled = np.full((len(rows), values.shape[1]), 0.0 if o.pooling == "mean" else -np.inf)
    counts = np.zeros(len(rows), dtype=np.int64)
    kept, kept_bins = values[real].astype(np.float64), bins[real]  # (m, d), ascending bins
    if len(kept_bins):
        starts = np.flatnonzero(np.r_[True, kept_bins[1:] != kept_bins[:-1]])
        reduce = np.add.reduceat if o.pooling == "mean" else np.maximum.reduceat
        which = np.searchsorted(rows, kept_bins[starts])
        pooled[which] = reduce(kept, starts, axis=0)
        counts[which] = np.diff(np.r_[starts, len(kept_bins)])
    return {"rows": rows + row0, "pooled": pooled, "counts": counts}


def job_manifest(model_path, runner, fasta, regions_path, targets: list[Region], options: EmbedOptions) -> dict:
    """What identifies a job: a rerun into the same output must match it exactly."""
    return {
        "command": "embed",
        "model_sha256": weights_sha256(runner.model),
        "model_config": runner.model.info.to_dict(),
        "fasta_name": Path(fasta).name,
        "fasta_sha256": file_sha256(fasta),
        "regions_name": Path(regions_path).name if regions_path else None,
        "regions_sha256": regions_sha256(targets) if regions_path else None,
        "options": asdict(options),
    }


def embed(
    model: str | Path,
    fasta: str | Path,
    out: str | Path,
    regions: str | Path | None = None,
    options: EmbedOptions | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    progress: bool = True,
    sequence_parallel: int = 1,
) -> Path:
    """Embed `fasta` (whole chromosomes, or the BED `regions`) with `model` into the HDF5 file `out`.

    Resumable: rerunning after an interruption computes only the missing chunks, and the file is the one an
    uninterrupted run writes. Under torchrun (RANK / WORLD_SIZE) the processes split the chunks; rank 0 writes `out`.
    `sequence_parallel` > 1: groups of that many processes split each window among them.
    """
    out, options = Path(out), options or EmbedOptions(per="region" if regions else "tile")
    if out.suffix not in (".h5", ".hdf5"):
        raise ConfigError(f"--out {out}: give an HDF5 file name ending in .h5 or .hdf5")
    runner = InferenceModel.load(model, device, precision, batch_size)
    options = resolve_options(options, runner)
    genome = prepare(fasta, cache_dir, progress=progress)
    targets = target_regions(genome, regions, runner.k)
    manifest = job_manifest(model, runner, fasta, regions, targets, options)
    if store.is_finished(out, manifest):
        print(f"{out}: already complete", file=sys.stderr)
        return out
    if out.parent and not out.parent.is_dir():
        raise InputFileError(f"--out {out}: folder {out.parent} does not exist")
    d = runner.model.cfg.d_model
    chunks = plan_chunks(genome, targets, tiling_of(options, runner), max(options.window, CHUNK_BYTES // (4 * d)))
    row_starts = np.concatenate([[0], np.cumsum([rows_of(r, options) for r in targets])])
    parts = PartStore(out, manifest)
    parts.open()
    workers = join_workers(sequence_parallel, runner.device)
    runner.start(workers.group, options.window)
    outputs, tiling = hidden_outputs(runner, options.layer), tiling_of(options, runner)

    def compute(i: int) -> dict[str, np.ndarray]:
        pooled = [pool_piece(values, real, piece, targets[piece.region], int(row_starts[piece.region]), options)
                  for piece, values, real in chunk_outputs(runner, genome, chunks[i], targets, tiling, outputs, d,
                                                           strands_of(options))]
        return {key: np.concatenate([p[key] for p in pooled]) for key in ("rows", "pooled", "counts")}

    sizes = [c.bases for c in chunks]
    if not run_chunks(parts, sizes, workers, compute, f"embed {Path(fasta).name}", progress):
        return out
    attrs = {
        "format": store.FORMAT,
        "genomenet_version": genomenet.__version__,
        "manifest": json.dumps(manifest, sort_keys=True),
    }
    store.write(out, parts, len(chunks), targets, row_starts, options, d, attrs)
    parts.remove()
    return out
