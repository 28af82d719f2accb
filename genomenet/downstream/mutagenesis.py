"""In-silico saturation mutagenesis: every alternative base at every position of a region, scored like a VCF's SNVs.

Writes `OUT.tsv` (chrom, 1-based pos, ref, alt, score), `OUT.png` (a position x base heatmap) and `OUT.bedGraph` (the
per-position maximum effect: the largest of -llr / -log_odds / distance over the three alternatives).
"""

from __future__ import annotations

import csv
import os
import re
from pathlib import Path

import numpy as np
from tqdm import tqdm

from genomenet.data.cache import prepare
from genomenet.data.variants import Variant
from genomenet.downstream.score_variants import check_output
from genomenet.downstream.variant_effects import ScoreOptions, VariantScorer
from genomenet.downstream.variant_eval import EFFECT_SIGN
from genomenet.errors import InputFileError
from genomenet.inference.runner import InferenceModel

BASES = "ACGT"


def parse_region(text: str, lengths: dict[str, int]) -> tuple[str, int, int]:
    """`chrom:start-end` (1-based, inclusive, as genome browsers write it) -> (chrom, 0-based start, end)."""
    match = re.fullmatch(r"(.+):([\d,]+)-([\d,]+)", text)
    if not match:
        raise InputFileError(f"--region {text!r}: expected chrom:start-end (1-based, inclusive)")
    chrom, start, end = match.group(1), int(match.group(2).replace(",", "")) - 1, int(match.group(3).replace(",", ""))
    if chrom not in lengths:
        raise InputFileError(f"--region {text}: contig '{chrom}' is not in the FASTA")
    if not 0 <= start < end <= lengths[chrom]:
        raise InputFileError(f"--region {text}: outside {chrom} (length {lengths[chrom]}) or empty")
    return chrom, start, end


def mutagenize(model: str, fasta: str, region: str, out: str, options: ScoreOptions, device: str = "auto",
               batch_size: int = 8, cache_dir: str | None = None, progress: bool = True) -> list[Path]:
    for path in output_paths(Path(out)):   # before any work, naming the user's path
        check_output(path, "--out")
    runner = InferenceModel.load(model, device, "auto", batch_size)
    genome = prepare(fasta, cache_dir, progress=progress)
    chrom, start, end = parse_region(region, genome.lengths)
    scorer = VariantScorer(runner, genome, options)
    name = scorer.scores[0]
    text = genome.sequence(chrom, start, end).upper()
    effects = np.full((end - start, 4), np.nan)
    variants = [Variant(i + 1, chrom, start + i, base, tuple(b for b in BASES if b != base))
                for i, base in enumerate(text) if base in BASES]
    if not variants:
        raise InputFileError(f"--region {region}: no A, C, G or T in {fasta} there (all N or ambiguity codes): "
                             "nothing to mutate")
    rows = []
    bar = tqdm(total=len(variants), desc=f"mutating {region}", disable=not progress, unit=" positions")
    for first in range(0, len(variants), 32):
        chunk = variants[first:first + 32]
        for variant, (values, marks) in zip(chunk, scorer.score(chunk, {}), strict=True):
            for alt, value, mark in zip(variant.alts, values[name], marks, strict=True):
                rows.append((chrom, variant.start + 1, variant.ref, alt, value, mark))
                if value is not None:
                    effects[variant.start - start, BASES.index(alt)] = value
        bar.update(len(chunk))
    bar.close()
    return write_outputs(Path(out), rows, effects, chrom, start, name)


def write_outputs(out: Path, rows: list, effects: np.ndarray, chrom: str, start: int, name: str) -> list[Path]:
    """TSV, heatmap PNG and bedGraph of the maximum effect, each written whole or not at all."""
    paths = output_paths(out)
    tmp = [p.with_name(f".{p.name}.tmp") for p in paths]
    with open(tmp[0], "w", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(["chrom", "pos", "ref", "alt", name, "flag"])
        writer.writerows([c, p, r, a, "." if v is None else f"{v:.6g}", m or "."] for c, p, r, a, v, m in rows)
    heatmap(effects, name, f"{chrom}:{start + 1}-{start + len(effects)}", tmp[1])
    oriented = EFFECT_SIGN.get(name, 1.0) * effects
    with open(tmp[2], "w") as handle:
        handle.write(f'track type=bedGraph name="max effect ({name})"\n')
        for i, row in enumerate(oriented):
            if not np.isnan(row).all():
                handle.write(f"{chrom}\t{start + i}\t{start + i + 1}\t{np.nanmax(row):.6g}\n")
    for t, p in zip(tmp, paths, strict=True):
        os.replace(t, p)
    return paths


def output_paths(out: Path) -> list[Path]:
    """PREFIX.tsv, PREFIX.png, PREFIX.bedGraph: a dot inside the prefix stays (`ism_chr20_1.2Mb`); one of the three
    suffixes given with it is dropped (`--out ism.tsv`)."""
    prefix = out.with_suffix("") if out.suffix in (".tsv", ".png", ".bedGraph") else out
    return [prefix.with_name(prefix.name + suffix) for suffix in (".tsv", ".png", ".bedGraph")]


def heatmap(effects: np.ndarray, name: str, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    width = min(max(6.0, len(effects) / 25), 40.0)
    fig, ax = plt.subplots(figsize=(width, 2.2))
    limit = np.nanmax(np.abs(effects)) if not np.isnan(effects).all() else 1.0
    cmap = plt.get_cmap("RdBu").with_extremes(bad="0.6")  # the reference base: grey
    image = ax.imshow(np.ma.masked_invalid(effects.T), aspect="auto", cmap=cmap, vmin=-limit, vmax=limit,
                      interpolation="nearest")
    ax.set_yticks(range(4), list(BASES))
    ax.set_xlabel("position in region")
    ax.set_title(f"{title}: {name} per alternative (grey: reference)", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.02)
    fig.tight_layout()
    fig.savefig(path, dpi=100, format="png")
    plt.close(fig)
