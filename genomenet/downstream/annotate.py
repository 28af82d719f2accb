"""`genomenet annotate`: a trained segmentation model run over whole chromosomes -> per-class probability tracks and
predicted genes, mRNAs, exons and CDS as GFF3.

Running the model is `genomenet track`'s machinery: each region (a chromosome, or a merged BED interval) is tiled
into windows of `window` bases, and each base's probabilities come from the one window that keeps it, where it has
at least `context` bases on each side (a segmenter sees both sides: a masked backbone, or a causal one run on both
strands; a causal backbone on one strand gets `context` bases on its left). Regions are read on '+' whatever their
BED strand (the model calls genes on both). A window's values are the model's on that window alone (windows are not
padded). Bases in N tokens get no value. Windows are run a chunk (about CHUNK_BASES kept bases) at a time, and each
chunk is saved as a part beside OUT: an interrupted run resumes from its parts; a rerun with another model, FASTA,
regions, window, context or precision is refused.

Parts hold the probabilities rounded to the track precision (DECIMALS places, as uint16; 2 bytes a class a base),
and everything written comes from them: the tracks (OUT without .gff3, then .<class>.bedGraph, or .bw) and the
GFF3, which is exactly `decode_features` of the values in the tracks. Decoding options may change between a run
and its resumption: they do not touch the parts.

Chunked decoding. A region's probabilities are streamed through `GeneStream` DECODE_BASES at a time, never whole.
By `decode_features`' rules a gene call is a run of called gene bases (gaps up to max_gap bridged), and all of a
gene's features are computed from the bases inside it; so a cut at a position p where the max_gap + 1 bases from p
on are all uncalled splits no gene and bridges no gap: decoding [.., p) and [p, ..) apart gives what decoding the
whole does. GeneStream decodes up to the last such cut in what it holds and keeps the rest for the next piece.
Memory is then bounded by the longest gene call; a stretch longer than `max_gene` (a model that calls a whole
chromosome genic) is cut regardless, with a warning.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from tqdm import tqdm

from genomenet.data.cache import prepare
from genomenet.data.tokenizers import make_tokenizer
from genomenet.downstream.gene_decoding import (
    ClassTrack,
    DecodeOptions,
    Feature,
    GFF3Writer,
    decode_features,
    gene_calls,
)
from genomenet.errors import ConfigError, InputFileError
from genomenet.inference.chunks import chunk_outputs, plan_chunks, resolve_tiling
from genomenet.inference.parts import PartStore, join_workers, run_chunks
from genomenet.inference.regions import file_sha256, regions_sha256, target_regions
from genomenet.inference.runner import BaseOutputs, InferenceModel, autocast_dtype, pick_device, weights_sha256
from genomenet.inference.tracks import DECIMALS, merged_regions, track_writer
from genomenet.model.segmenter import load_segmenter

CHUNK_BASES = 1 << 20
"""Kept bases per chunk of work (one part file); sets the memory of the model pass: bases x classes x 4 bytes."""
DECODE_BASES = 1 << 18
"""Bases handed at a time to the track writers and the gene decoder when the outputs are assembled."""
SCALE = 10**DECIMALS
NO_VALUE = np.iinfo(np.uint16).max
"""A part's value for a base with no prediction (in an N token)."""
DECODED = ("gene", "exon", "intron", "CDS", "splice_donor", "splice_acceptor", "five_prime_UTR", "three_prime_UTR")
"""The classes `decode_features` reads; only these are held for decoding."""


@dataclass(frozen=True)
class AnnotateOptions:
    """What `genomenet annotate` computes and writes; window and context go into the resume manifest."""

    window: int = 0
    """Bases per model window (0: the model's training window, its context_length)."""
    context: int = -1
    """Least context per base, on each side (left only for a one-strand causal model); -1: window / 8 (/ 4)."""
    decode: DecodeOptions = field(default_factory=DecodeOptions)
    """How probabilities become gene, mRNA, exon and CDS calls."""
    model_thresholds: bool = True
    """Call each class at the model's own threshold (picked on validation at fit) where it has one, in place of
    decode.threshold; False: decode's thresholds only."""
    tracks: bool = True
    """Write the per-class probability tracks (False: only the GFF3)."""
    classes: tuple[str, ...] = ()
    """Classes to write tracks of (empty: all of the model's)."""
    bigwig: bool = False
    """Tracks as bigWig (.bw, needs pyBigWig) instead of bedGraph."""
    max_gene: int = 5_000_000
    """Longest stretch of called gene bases decoded as one (bases); longer ones are cut, to bound memory."""

    def __post_init__(self) -> None:
        if self.max_gene < 1:
            raise ConfigError(f"--max-gene-length {self.max_gene}: give at least 1")


class SegmenterRunner(InferenceModel):
    """A segmentation model behind the inference runner: the same device, precision and batching as `track`."""

    @classmethod
    def load(cls, path: str | Path, device: str = "auto", precision: str = "auto", batch_size: int = 8):
        if batch_size < 1:
            raise ConfigError(f"--batch-size {batch_size} must be >= 1")
        chosen = pick_device(device)
        dtype = autocast_dtype(chosen, precision)
        net = load_segmenter(path, make_tokenizer).to(chosen)
        return cls(net, make_tokenizer(net.info.kmer_size), chosen, dtype, batch_size)

    @property
    def classes(self) -> list[str]:
        return list(self.model.info.classes)

    @property
    def causal(self) -> bool:
        """Whether a base sees only its left: a causal backbone read on one strand."""
        return bool(self.model.info.causal and self.model.info.strands == "forward")

    def default_window(self) -> int:
        if not self.model.info.context_length:
            raise ConfigError("this segmenter does not record its training window: give --window")
        return int(self.model.info.context_length)

    def start(self, group, window: int) -> None:
        """Run one warm-up window, so the first real window runs like every later one (see InferenceModel.start)."""
        if group is not None:
            raise ConfigError("annotate runs each window on one device: --sequence-parallel is not supported")
        with torch.inference_mode(), self.autocast():
            self.model(torch.zeros(1, window // self.k, dtype=torch.long, device=self.device))


def probability_outputs(runner: SegmenterRunner) -> BaseOutputs:
    """Per-base class probabilities (sigmoid of the logits), NaN for bases in N tokens. Windows of each length are
    run apart, unpadded (the batch pads short ones on the right), so that a base's values are those of its window
    alone, whatever it was batched with: the head's convolutions would otherwise read padding."""
    k, pad = runner.k, runner.tokenizer.pad_id

    def outputs(ids: Tensor, real: Tensor) -> Tensor:
        lengths = (ids != pad).sum(1)                                    # (b,): real tokens, then padding
        probs = torch.full((ids.shape[0], ids.shape[1] * k, len(runner.classes)), float("nan"), device=ids.device)
        for length in lengths.unique().tolist():
            rows = (lengths == length).nonzero()[:, 0]
            probs[rows, : length * k] = torch.sigmoid(runner.model(ids[rows, :length]).float())
        real_bases = real.repeat_interleave(k, dim=1)[..., None]         # (b, n * k, 1)
        return torch.where(real_bases, probs, torch.full_like(probs, float("nan")))  # (b, n * k, classes)

    return outputs


def quantized(values: np.ndarray) -> np.ndarray:
    """Probabilities (n, c) float -> uint16 in units of 10**-DECIMALS, NO_VALUE for NaN."""
    scaled = np.rint(values * SCALE)
    return np.where(np.isnan(scaled), NO_VALUE, scaled).astype(np.uint16)


def probabilities(values: np.ndarray) -> np.ndarray:
    """uint16 part values -> float64 probabilities, NaN where there is no value: the numbers the tracks hold."""
    out = values / float(SCALE)
    out[values == NO_VALUE] = np.nan
    return out


def output_paths(out: Path, classes: list[str], options: AnnotateOptions) -> tuple[Path, dict[str, Path]]:
    """OUT (.gff3 or .gff) and the track file of each class written: OUT_PREFIX.<class>.bedGraph (or .bw)."""
    if out.suffix.lower() not in (".gff3", ".gff"):
        raise ConfigError(f"--out {out}: give a .gff3 file name (tracks are written beside it)")
    if not out.parent.is_dir():
        raise InputFileError(f"--out {out}: folder {out.parent} does not exist")
    unknown = [c for c in options.classes if c not in classes]
    if unknown:
        raise ConfigError(f"--classes {','.join(unknown)}: not classes of this model (it has {', '.join(classes)})")
    if options.bigwig:
        try:
            import pyBigWig  # noqa: F401
        except ImportError:
            raise ConfigError("--bigwig needs pyBigWig (pip install pyBigWig); or leave it out for bedGraph") from None
    tracks = {}
    if options.tracks:
        suffix = ".bw" if options.bigwig else ".bedGraph"
        names = {c: re.sub(r"[^A-Za-z0-9_.+-]", "_", c) for c in (options.classes or classes)}
        if len(set(names.values())) < len(names):
            raise ConfigError(f"classes {list(names)}: two of them give the same track file name; choose --classes")
        tracks = {c: out.with_name(f"{out.stem}.{name}{suffix}") for c, name in names.items()}
    for path in (out, *tracks.values()):   # else the run would end in a traceback, its temporary files left behind
        if path.is_dir():
            raise InputFileError(f"--out {out}: {path} is a directory; give another file name")
    return out, tracks


def with_model_thresholds(options: AnnotateOptions, thresholds: dict[str, float] | None) -> AnnotateOptions:
    """`options` whose decoding calls each class at the model's threshold (`thresholds`, picked on validation),
    unless options.model_thresholds is off or the model has none; a class's own decode threshold still wins."""
    if not options.model_thresholds or not thresholds:
        return options
    decode = replace(options.decode, class_thresholds={**thresholds, **options.decode.class_thresholds})
    return replace(options, decode=decode)


def annotate(
    model: str | Path,
    fasta: str | Path,
    out: str | Path,
    regions: str | Path | None = None,
    options: AnnotateOptions | None = None,
    device: str = "auto",
    precision: str = "auto",
    batch_size: int = 8,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> list[Path]:
    """Write the GFF3 of the genes the segmenter `model` calls on `fasta` (or its BED `regions`, merged) and the
    per-class probability tracks; returns the files written, the GFF3 first. Resumable (see the module docstring)."""
    out, options = Path(out), options or AnnotateOptions()
    if not Path(fasta).is_file():
        raise InputFileError(f"--fasta {fasta}: no such FASTA file")
    runner = SegmenterRunner.load(model, device, precision, batch_size)
    classes = runner.classes
    options = with_model_thresholds(options, runner.model.info.thresholds)
    if not {"gene", "exon", "intron"} & set(classes):
        raise ConfigError(f"--model {model}: its classes ({', '.join(classes)}) include none of gene, exon, intron; "
                          "there are no genes to decode")
    gff3, tracks = output_paths(out, classes, options)
    tiling = resolve_tiling(runner, options.window, options.context, 0)
    genome = prepare(fasta, cache_dir, progress=progress)
    records = target_regions(genome, regions, runner.k)
    targets = merged_regions(records, genome.names)
    manifest = {"command": "annotate", "model_sha256": weights_sha256(runner.model), "fasta_sha256": file_sha256(fasta),
                "regions_sha256": regions_sha256(records) if regions else None, "classes": classes,
                "precision": str(runner.dtype), "chunk_bases": CHUNK_BASES,
                "options": {"window": tiling.window, "context": tiling.context}}
    chunks = plan_chunks(genome, targets, tiling, max(tiling.window, CHUNK_BASES))
    parts = PartStore(gff3, manifest)
    parts.open()
    workers = join_workers(1, runner.device)
    runner.start(workers.group, tiling.window)
    outputs = probability_outputs(runner)

    def compute(i: int) -> dict[str, np.ndarray]:
        pieces = chunk_outputs(runner, genome, chunks[i], targets, tiling, outputs, len(classes))
        return {"chroms": np.array([targets[p.region].chrom for p, _, _ in pieces]),
                "starts": np.array([p.start for p, _, _ in pieces]),
                "lengths": np.array([p.end - p.start for p, _, _ in pieces]),
                "values": quantized(np.concatenate([values for _, values, _ in pieces]))}

    sizes = [c.bases for c in chunks]
    written = [gff3, *tracks.values()]
    if not run_chunks(parts, sizes, workers, compute, f"annotate {Path(fasta).name}", progress):
        return written
    write_outputs(parts, len(chunks), gff3, tracks, classes, genome.lengths, options, sum(sizes) if progress else 0)
    parts.remove()
    return written


def part_pieces(parts: PartStore, n_chunks: int) -> Iterator[tuple[str, int, np.ndarray]]:
    """(chrom, start, uint16 values (m, classes)) of every part's pieces in genomic order, at most DECODE_BASES
    bases each; consecutive pieces of one region are contiguous."""
    for i in range(n_chunks):
        part = parts.load(i)
        offsets = np.r_[0, np.cumsum(part["lengths"])].tolist()
        for j, (chrom, start) in enumerate(zip(part["chroms"].tolist(), part["starts"].tolist())):
            values = part["values"][offsets[j] : offsets[j + 1]]
            for a in range(0, len(values), DECODE_BASES):
                yield chrom, start + a, values[a : a + DECODE_BASES]


def write_outputs(parts: PartStore, n_chunks: int, gff3: Path, tracks: dict[str, Path], classes: list[str],
                  lengths: dict[str, int], options: AnnotateOptions, progress_bases: int = 0) -> None:
    """Assemble the parts, in genomic order, into the tracks and the GFF3 (each renamed into place when whole);
    a progress bar over `progress_bases` bases when not 0."""
    writers = {c: track_writer(path, f"p({c})", f"probability of {c} per base", lengths) for c, path in tracks.items()}
    column = {c: j for j, c in enumerate(classes)}
    stream: GeneStream | None = None
    with GFF3Writer(gff3, lengths) as gff, tqdm(total=progress_bases, unit="bp", unit_scale=True, file=sys.stderr,
                                               desc=f"write {gff3.name}", disable=not progress_bases) as bar:
        for chrom, start, values in part_pieces(parts, n_chunks):
            for c, writer in writers.items():
                writer.add(chrom, start, probabilities(values[:, column[c]]))
            if stream is None or not stream.continues(chrom, start):
                if stream is not None:
                    gff.write(stream.finish())
                stream = GeneStream(chrom, start, classes, options.decode, options.max_gene)
            gff.write(stream.feed(values))
            bar.update(len(values))
        if stream is not None:
            gff.write(stream.finish())
    for writer in writers.values():
        writer.close()


class GeneStream:
    """One region's probabilities fed in order, piece by piece; returns the features of the stretches that no later
    base can change (see the module docstring), so only the bases of an unfinished gene call are held."""

    def __init__(self, chrom: str, start: int, classes: list[str], options: DecodeOptions, max_gene: int):
        self.chrom, self.offset, self.end, self.options, self.max_gene = chrom, start, start, options, max_gene
        self.columns = [j for j, c in enumerate(classes) if c in DECODED]
        self.names = [classes[j] for j in self.columns]
        genic = ["gene"] if "gene" in self.names else [c for c in ("exon", "intron") if c in self.names]
        self.genic = [self.names.index(c) for c in genic]  # the columns gene calls are made from
        self.held = np.empty((0, len(self.columns)), dtype=np.uint16)  # bases offset..end, not yet decoded

    def continues(self, chrom: str, start: int) -> bool:
        return chrom == self.chrom and start == self.end

    def feed(self, values: np.ndarray) -> list[Feature]:
        """Take the next bases (uint16 part values, (m, classes)); return the features decoded so far."""
        self.held = np.concatenate([self.held, values[:, self.columns]])
        self.end += len(values)
        cut = self.safe_cut()
        if cut == 0 and len(self.held) > self.max_gene:
            warnings.warn(f"{self.chrom}:{self.offset}-{self.end}: called genic over more than {self.max_gene} bases; "
                          "decoded in pieces (raise --max-gene-length to keep it whole)", stacklevel=2)
            cut = len(self.held)
        return self.decode(cut)

    def finish(self) -> list[Feature]:
        return self.decode(len(self.held))

    def safe_cut(self) -> int:
        """The last position p > 0 of the held bases with no called gene base in [p, p + max_gap + 1); 0 if none."""
        n, reach = len(self.held), self.options.max_gap + 1
        genic = self.held[:, self.genic]
        names = [self.names[j] for j in self.genic]
        calls = gene_calls(ClassTrack(probabilities(genic), names, self.options.threshold,
                                      self.options.class_thresholds),
                           replace(self.options, min_gene=1))
        if not calls or n - calls[-1][1] >= reach:
            return max(0, n - reach)
        return max(0, calls[-1][0] - reach)  # before the last call, which later bases may extend

    def decode(self, cut: int) -> list[Feature]:
        """Features of the first `cut` held bases, which are then let go."""
        if cut == 0:
            return []
        probs = probabilities(self.held[:cut])
        features = decode_features(self.chrom, probs, self.names, self.offset, self.options)
        self.held, self.offset = self.held[cut:].copy(), self.offset + cut
        return features
