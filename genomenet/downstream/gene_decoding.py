"""Per-base class probabilities of a segmentation model -> predicted genes, mRNAs, exons and CDS, written as GFF3.

`probs` is (n_bases, n_classes) for bases offset..offset+n of one chromosome, column j the probability of
`classes[j]` (multi-label: sigmoid outputs, each column on its own). Class names used, all optional: "gene", "exon",
"intron", "CDS", "splice_donor", "splice_acceptor", "five_prime_UTR", "three_prime_UTR"; other columns are ignored.
A base *has* a class when its probability is at least the class's threshold (`class_thresholds`, else
`threshold`; NaN, no prediction: it does not).

The decoding, the contract:

1. Gene calls: runs of bases that have "gene", gaps of at most `max_gap` bases bridged, kept when at least
   `min_gene` long. Without a "gene" class: runs of bases that have "exon" or "intron".
2. Exon calls: inside each gene call, runs of "exon" (gaps of at most `exon_max_gap` bridged) clipped to the gene,
   kept when at least `min_exon` long. A gene call with no exon call is dropped. Without an "exon" class only genes
   are called (no mRNA, exons or CDS).
3. One mRNA per gene, from its first exon's start to its last exon's end, the parent of the exons (and CDS).
4. CDS, when "CDS" is a class: runs of "CDS" inside each exon call, kept when at least `min_cds` long. Phases follow
   the CDS order in transcript orientation (5' to 3'): the first has phase 0, each next one (3 - L % 3) % 3 with L the
   CDS bases before it. Genes without a strand are read as '+' for this.
5. Strand. Each evidence pair is a class's mean probability where a '+' gene has that signal minus where a '-' gene
   has it. A '+' intron has the donor at its low-coordinate end and the acceptor at its high end, so each intron (a
   gap between consecutive exon calls) gives "splice_donor" over its first `splice_window` bases minus over its last
   ones, and "splice_acceptor" over its last minus its first. The transcript (its exonic bases, in coordinate order)
   gives "five_prime_UTR" over its first `utr_window` bases minus its last ones, and "three_prime_UTR" over its last
   minus its first (each end at most half the transcript). The gene is '+' when the mean over its pairs is at least
   `strand_margin`, '-' when at most -`strand_margin`, and '.' otherwise or with no pairs (a single-exon gene
   without UTR classes, or no splice and UTR classes). Its mRNA, exons and CDS share its strand.
6. Score column: the mean probability of the feature's class over its bases: "gene" for genes (without a "gene"
   class, the larger of "exon" and "intron" per base), "exon" over the exon calls for mRNAs, "exon" for exons and
   "CDS" for CDS.

IDs: gene{k}, gene{k}.t1, gene{k}.t1.exon{i}, gene{k}.t1.cds{i}, k counted from 1 in each call, exons and CDS numbered
5' to 3'; `GFF3Writer` renumbers the genes across the whole file. Features come back in GFF3 order: genes by start,
each followed by its mRNA and then its exons and CDS by start. Coordinates are 0-based half-open plus `offset`; the
writer makes them 1-based inclusive. A gene cut by either end of `probs` is called as far as it is seen: decode whole
chromosomes, or reconcile overlapping chunks yourself.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import numpy as np

from genomenet.errors import ConfigError, InputFileError

GFF3_SAFE = ".:^*$@!+_?-|"  # characters GFF3 leaves unescaped in seqid, beside letters and digits


@dataclass
class DecodeOptions:
    """How per-base probabilities become feature calls (see the module docstring for the rules)."""

    threshold: float = 0.5
    """A base has a class when its probability is at least this (a class not in `class_thresholds`)."""
    min_exon: int = 10
    """Exon calls shorter than this (bases) are dropped."""
    min_gene: int = 100
    """Gene calls shorter than this (bases, after bridging) are dropped."""
    max_gap: int = 0
    """Gaps of up to this many bases inside a gene call are bridged (smooths dips in p(gene))."""
    exon_max_gap: int = 0
    """Gaps of up to this many bases between exon calls are bridged (0: every gap is an intron)."""
    min_cds: int = 1
    """CDS calls shorter than this (bases) are dropped; real CDS pieces at an exon's edge can be 1 or 2 bases."""
    splice_window: int = 2
    """Bases at each end of an intron over which splice-site probabilities are averaged."""
    utr_window: int = 50
    """Exonic bases at each end of a transcript over which UTR probabilities are averaged."""
    strand_margin: float = 0.1
    """Least mean evidence difference (probability units, 0..1) for calling a strand; below it the strand is '.'."""
    class_thresholds: dict[str, float] = field(default_factory=dict)
    """Per class, a threshold in place of `threshold` (a model's, picked on validation: SegmenterInfo.thresholds)."""

    def __post_init__(self) -> None:
        if not 0 < self.threshold <= 1:
            raise ConfigError(f"threshold {self.threshold}: give a probability in (0, 1]")
        for name, value in self.class_thresholds.items():
            if not 0 < value <= 1:
                raise ConfigError(f"threshold {value} of class {name}: give a probability in (0, 1]")
        for name in ("min_exon", "min_gene", "min_cds", "splice_window", "utr_window"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} {getattr(self, name)}: give at least 1")
        for name in ("max_gap", "exon_max_gap"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} {getattr(self, name)}: give 0 or more")
        if not 0 <= self.strand_margin <= 1:
            raise ConfigError(f"strand_margin {self.strand_margin}: give a value in [0, 1]")


@dataclass
class Feature:
    """One GFF3 line; `start`, `end` are 0-based half-open on `seqid`."""

    seqid: str
    type: str
    start: int
    end: int
    score: float
    """NaN is written as '.'."""
    strand: str
    """'+', '-' or '.'."""
    id: str
    parent: str | None = None
    phase: int | None = None
    """CDS only: bases to skip from `start` ('+') or `end` ('-') to the first whole codon; 0, 1 or 2."""


def run_bounds(mask: np.ndarray, max_gap: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Starts and ends (int64 arrays, 0-based half-open) of the runs of True in a 1-D mask, gaps <= max_gap bridged."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 1:
        raise ValueError(f"mask has shape {mask.shape}: give a 1-D array")
    zero = np.zeros(1, dtype=np.int8)
    edges = np.flatnonzero(np.diff(mask.view(np.int8), prepend=zero, append=zero))  # rises and falls, alternating
    starts, ends = edges[0::2], edges[1::2]
    if max_gap > 0 and len(starts) > 1:
        joined = starts[1:] - ends[:-1] <= max_gap  # (runs - 1,): gap before run i + 1 is bridged
        starts, ends = starts[np.r_[True, ~joined]], ends[np.r_[~joined, True]]
    return starts, ends


def runs(mask: np.ndarray, max_gap: int = 0) -> list[tuple[int, int]]:
    """(start, end) 0-based half-open runs of True in a 1-D mask; gaps of at most `max_gap` False bases bridged."""
    starts, ends = run_bounds(mask, max_gap)
    return list(zip(starts.tolist(), ends.tolist()))


class ClassTrack:
    """`probs` with its class names: a class's values, means and calls (probability >= its threshold) by name."""

    def __init__(self, probs: np.ndarray, classes: Sequence[str], threshold: float,
                 class_thresholds: dict[str, float] | None = None):
        probs, classes = np.asarray(probs), list(classes)
        if probs.ndim != 2 or probs.shape[1] != len(classes):
            raise ConfigError(f"probs has shape {probs.shape} but {len(classes)} classes were given ({classes}): "
                              f"give probs of shape (n_bases, {len(classes)}), one column per class")
        if len(set(classes)) != len(classes):
            raise ConfigError(f"classes {classes}: each name may appear once")
        if not {"gene", "exon", "intron"} & set(classes):
            raise ConfigError(f"classes {classes}: none of 'gene', 'exon', 'intron', so there is nothing to call "
                              "genes from")
        self.probs, self.threshold, self.class_thresholds = probs, threshold, dict(class_thresholds or {})
        self.column = {name: j for j, name in enumerate(classes)}

    def has(self, name: str) -> bool:
        return name in self.column

    def values(self, name: str, start: int = 0, end: int | None = None) -> np.ndarray:
        return self.probs[start:end, self.column[name]]

    def called(self, name: str, start: int = 0, end: int | None = None) -> np.ndarray:
        return self.values(name, start, end) >= self.class_thresholds.get(name, self.threshold)

    def mean(self, name: str, start: int, end: int) -> float:
        return float(np.mean(self.values(name, start, end), dtype=np.float64)) if end > start else math.nan

    def exonic(self, name: str, exons: list[tuple[int, int]]) -> np.ndarray:
        """The class's values over the exons' bases, in coordinate order."""
        return np.concatenate([self.values(name, s, e) for s, e in exons])


def decode_features(chrom: str, probs: np.ndarray, classes: Sequence[str], offset: int = 0,
                    options: DecodeOptions | None = None) -> list[Feature]:
    """Genes, mRNAs, exons (and CDS when 'CDS' is a class) called from `probs`, (n_bases, n_classes) for bases
    offset..offset+n of `chrom`, in GFF3 order; the rules are in the module docstring."""
    options = options or DecodeOptions()
    track = ClassTrack(probs, classes, options.threshold, options.class_thresholds)
    groups: list[list[Feature]] = []  # a gene with its mRNA, exons and CDS
    for start, end in gene_calls(track, options):
        exons = exon_calls(track, start, end, options) if track.has("exon") else []
        if track.has("exon") and not exons:
            continue
        strand = gene_strand(track, exons, options)
        cds = cds_calls(track, exons, options) if track.has("CDS") else []
        gene = Feature(chrom, "gene", start, end, gene_score(track, start, end), strand, f"gene{len(groups) + 1}")
        groups.append([gene, *transcript_features(track, gene, exons, cds)])
    return [shifted(f, offset) for group in groups for f in group]


def gene_calls(track: ClassTrack, options: DecodeOptions) -> list[tuple[int, int]]:
    """Runs of "gene" (or of "exon" or "intron" without it), gaps bridged, at least min_gene long."""
    if track.has("gene"):
        mask = track.called("gene")
    else:
        mask = np.logical_or.reduce([track.called(name) for name in ("exon", "intron") if track.has(name)])
    starts, ends = run_bounds(mask, options.max_gap)
    keep = ends - starts >= options.min_gene
    return list(zip(starts[keep].tolist(), ends[keep].tolist()))


def gene_score(track: ClassTrack, start: int, end: int) -> float:
    if track.has("gene"):
        return track.mean("gene", start, end)
    parts = [track.values(name, start, end) for name in ("exon", "intron") if track.has(name)]
    return float(np.mean(np.fmax.reduce(parts), dtype=np.float64))


def exon_calls(track: ClassTrack, start: int, end: int, options: DecodeOptions) -> list[tuple[int, int]]:
    """Runs of "exon" inside the gene call [start, end), at least min_exon long."""
    s, e = run_bounds(track.called("exon", start, end), options.exon_max_gap)
    keep = e - s >= options.min_exon
    return [(start + a, start + b) for a, b in zip(s[keep].tolist(), e[keep].tolist())]


def cds_calls(track: ClassTrack, exons: list[tuple[int, int]], options: DecodeOptions) -> list[tuple[int, int]]:
    """Runs of "CDS" inside each exon call, at least min_cds long, in coordinate order."""
    out = []
    for start, end in exons:
        s, e = run_bounds(track.called("CDS", start, end))
        keep = e - s >= options.min_cds
        out += [(start + a, start + b) for a, b in zip(s[keep].tolist(), e[keep].tolist())]
    return out


def strand_evidence(track: ClassTrack, exons: list[tuple[int, int]], options: DecodeOptions) -> list[float]:
    """Evidence pairs, each (mean where a '+' gene has the signal) - (mean where a '-' gene has it)."""
    pairs, w = [], options.splice_window
    for (_, a), (b, _) in zip(exons[:-1], exons[1:]):  # the intron [a, b)
        low, high = (a, min(a + w, b)), (max(b - w, a), b)
        if track.has("splice_donor"):
            pairs.append(track.mean("splice_donor", *low) - track.mean("splice_donor", *high))
        if track.has("splice_acceptor"):
            pairs.append(track.mean("splice_acceptor", *high) - track.mean("splice_acceptor", *low))
    length = sum(e - s for s, e in exons)
    for name, sign in (("five_prime_UTR", 1), ("three_prime_UTR", -1)):
        if track.has(name) and length >= 2:
            values, n = track.exonic(name, exons), min(options.utr_window, length // 2)
            pairs.append(sign * float(np.mean(values[:n], dtype=np.float64) - np.mean(values[-n:], dtype=np.float64)))
    return pairs


def gene_strand(track: ClassTrack, exons: list[tuple[int, int]], options: DecodeOptions) -> str:
    pairs = strand_evidence(track, exons, options)
    evidence = float(np.mean(pairs)) if pairs else math.nan
    if evidence >= options.strand_margin:
        return "+"
    return "-" if evidence <= -options.strand_margin else "."


def cds_phases(lengths: list[int]) -> list[int]:
    """GFF3 phase of each CDS piece, given the piece lengths in transcript (5' to 3') order."""
    before = np.cumsum([0, *lengths[:-1]])
    return [int((3 - b % 3) % 3) for b in before]


def transcript_features(track: ClassTrack, gene: Feature, exons: list[tuple[int, int]],
                        cds: list[tuple[int, int]]) -> list[Feature]:
    """The gene's mRNA, then its exons and CDS by start (exon first at equal starts); empty without exons."""
    if not exons:
        return []
    chrom, strand, tid = gene.seqid, gene.strand, f"{gene.id}.t1"
    five_to_three = (lambda pieces: pieces[::-1]) if strand == "-" else (lambda pieces: pieces)
    mrna_score = float(np.mean(track.exonic("exon", exons), dtype=np.float64))
    children = [Feature(chrom, "exon", s, e, track.mean("exon", s, e), strand, f"{tid}.exon{i}", tid)
                for i, (s, e) in enumerate(five_to_three(exons), 1)]
    ordered = five_to_three(cds)
    phases = cds_phases([e - s for s, e in ordered])
    children += [Feature(chrom, "CDS", s, e, track.mean("CDS", s, e), strand, f"{tid}.cds{i}", tid, phase)
                 for i, ((s, e), phase) in enumerate(zip(ordered, phases), 1)]
    children.sort(key=lambda f: (f.start, f.type != "exon"))
    mrna = Feature(chrom, "mRNA", exons[0][0], exons[-1][1], mrna_score, strand, tid, gene.id)
    return [mrna, *children]


def shifted(f: Feature, offset: int) -> Feature:
    return Feature(f.seqid, f.type, f.start + offset, f.end + offset, f.score, f.strand, f.id, f.parent, f.phase)


def escape(text: str) -> str:
    """GFF3 percent-escaping: tabs, newlines, '%', ';', '=', '&', ',', spaces and other reserved characters."""
    return quote(text, safe=GFF3_SAFE)


class GFF3Writer:
    """GFF3 text, streamed: '##gff-version 3', a '##sequence-region' line per contig in `contig_lengths`, then one
    line per feature, 1-based inclusive, in the order written (write contig by contig, each in GFF3 order).

    IDs are unique in the file: each top-level feature (no parent) is renamed {type}{n}, n counting across all
    `write` calls (gene1, gene2, ...), and its descendants with it (gene1.t1.exon2 of the third gene becomes
    gene3.t1.exon2), so features from separate `decode_features` calls can share local IDs. Within one `write` call,
    local IDs are unique and a parent comes before its children. The file appears at `path` on `close` (or at the end
    of a `with` block that raised nothing); until then it is written beside it as a hidden '.tmp' file.
    """

    def __init__(self, path: str | Path, contig_lengths: dict[str, int], source: str = "genomenet"):
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise InputFileError(f"GFF3 output {self.path}: folder {self.path.parent} does not exist")
        self.tmp = self.path.with_name(f".{self.path.name}.tmp")
        self.lengths, self.source, self.counts = dict(contig_lengths), source, {}
        self.handle = open(self.tmp, "w")
        self.handle.write("##gff-version 3\n")
        for name, length in self.lengths.items():
            self.handle.write(f"##sequence-region {escape(name)} 1 {length}\n")

    def write(self, features: Iterable[Feature]) -> None:
        names: dict[str, str] = {}
        for f in features:
            self.check(f)
            name = self.file_id(f, names)
            self.handle.write(gff3_line(f, name, names[f.parent] if f.parent else None, self.source))

    def check(self, f: Feature) -> None:
        """A ValueError naming the feature when it cannot be a valid GFF3 line here."""
        length = self.lengths.get(f.seqid)
        if not 0 <= f.start < f.end or (length is not None and f.end > length):
            raise ValueError(f"feature {f.id} ({f.type}) at {f.seqid}:{f.start}-{f.end} (0-based) does not lie within "
                             f"{f.seqid} (length {length}): check the offset given to decode_features")
        if f.strand not in ("+", "-", ".", "?"):
            raise ValueError(f"feature {f.id}: strand {f.strand!r}; give '+', '-' or '.'")
        if (f.type == "CDS") != (f.phase is not None) or f.phase not in (None, 0, 1, 2):
            raise ValueError(f"feature {f.id} ({f.type}): phase {f.phase}; CDS need 0, 1 or 2, other types None")

    def file_id(self, f: Feature, names: dict[str, str]) -> str:
        """The feature's ID in the file; records it in `names` (local ID -> file ID of this write call)."""
        if f.id in names:
            raise ValueError(f"feature ID {f.id!r} appears twice in one write() call")
        if f.parent is None:
            self.counts[f.type] = self.counts.get(f.type, 0) + 1
            names[f.id] = f"{f.type}{self.counts[f.type]}"
        elif f.parent not in names:
            raise ValueError(f"feature {f.id}: its parent {f.parent!r} was not written before it in this write() call")
        else:
            suffix = f.id[len(f.parent):] if f.id.startswith(f.parent) else f".{f.id}"
            names[f.id] = names[f.parent] + suffix
        return names[f.id]

    def close(self) -> None:
        if self.handle.closed:
            return
        self.handle.flush()
        os.fsync(self.handle.fileno())
        self.handle.close()
        os.replace(self.tmp, self.path)

    def __enter__(self) -> GFF3Writer:
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.handle.close()
            self.tmp.unlink(missing_ok=True)


def gff3_line(f: Feature, fid: str, parent: str | None, source: str) -> str:
    """The feature's nine tab-separated GFF3 columns, 1-based inclusive, with its file ID and parent's file ID."""
    score = "." if math.isnan(f.score) else f"{f.score:.3f}"
    phase = "." if f.phase is None else str(f.phase)
    attributes = f"ID={escape(fid)}" + (f";Parent={escape(parent)}" if parent else "")
    columns = [escape(f.seqid), escape(source), escape(f.type), str(f.start + 1), str(f.end), score, f.strand, phase,
               attributes]
    return "\t".join(columns) + "\n"
