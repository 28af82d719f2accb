"""VCF records through pysam (htslib): opened with one-line errors, contigs matched to the FASTA, alleles classified.

Positions here are 0-based (pysam's `record.start`); REF is checked against the prepared genome before anything is
scored. Nothing is dropped: an allele that cannot be scored is kept and flagged.
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pysam

from genomenet.data.cache import PreparedGenome
from genomenet.data.intervals import missing_chromosome_hint
from genomenet.data.tokenizers import CODE_MASK, KmerTokenizer, pack, reverse_complement_packed
from genomenet.errors import InputFileError

SCORABLE = ("snv", "mnv", "indel")


def allele_kind(ref: str, alt: str | None) -> str:
    """snv | mnv (same length, several bases) | indel | symbolic (`<DEL>`) | star (`*`) | breakend | missing |
    non_acgt (an allele with IUPAC codes other than A, C, G, T)."""
    if alt is None or alt == ".":
        return "missing"
    if alt == "*":
        return "star"
    if alt.startswith("<"):
        return "symbolic"
    if any(c in alt for c in "[]") or alt.startswith(".") or alt.endswith("."):
        return "breakend"
    if set(alt) - set("ACGT") or set(ref) - set("ACGT"):
        return "non_acgt"  # IUPAC codes (N, R, ...): no single sequence to score
    if len(ref) == len(alt):
        return "snv" if len(ref) == 1 else "mnv"
    return "indel"


@dataclass(frozen=True)
class Variant:
    """One VCF record as the scorer reads it."""

    number: int
    """1-based record number in the file (for errors)."""
    chrom: str
    """The FASTA's name of its contig."""
    start: int
    """0-based position of REF's first base."""
    ref: str
    alts: tuple[str, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(allele_kind(self.ref, a) for a in self.alts)


def open_vcf(path: str | Path) -> pysam.VariantFile:
    """A VCF or BCF (plain or bgzipped) opened for reading; anything else is a one-line InputFileError."""
    path = Path(path)
    if not path.is_file():
        raise InputFileError(f"{path}: no such VCF file")
    pysam.set_verbosity(0)  # htslib's own warnings and errors: ours name the file and record in one line
    try:
        return pysam.VariantFile(str(path))
    except (ValueError, OSError) as err:
        raise InputFileError(f"{path}: not a readable VCF ({err})") from None
    except NotImplementedError:  # htslib opens plain gzip, then pysam cannot seek in it
        raise InputFileError(f"{path}: compressed with plain gzip, not bgzip; recompress it (zcat {path.name} | bgzip "
                             f"> NEW.vcf.gz) or gunzip it") from None


class ContigMatcher:
    """VCF contig -> FASTA record name, reconciling a `chr` prefix on one side only (said once on stderr)."""

    def __init__(self, vcf_path: str | Path, fasta_names: list[str]) -> None:
        self.path, self.names, self.known = vcf_path, fasta_names, set(fasta_names)
        self.renamed: dict[str, str] = {}

    def __call__(self, chrom: str, number: int) -> str:
        if chrom in self.known:
            return chrom
        if chrom not in self.renamed:
            other = chrom.removeprefix("chr") if chrom.startswith("chr") else f"chr{chrom}"
            if other not in self.known:
                hint = missing_chromosome_hint(chrom, self.names)
                raise InputFileError(f"{self.path}: record {number}: contig '{chrom}' is not in the FASTA{hint}")
            print(f"genomenet: note: VCF contig '{chrom}' read as the FASTA's '{other}'", file=sys.stderr)
            self.renamed[chrom] = other
        return self.renamed[chrom]


def read_variants(vcf: pysam.VariantFile, path: str | Path, match: ContigMatcher) -> Iterator[
        tuple[pysam.VariantRecord, Variant]]:
    """Each record with its Variant; a record without ALT or a file cut short is a one-line InputFileError."""
    number = 0
    try:
        for number, record in enumerate(vcf, start=1):
            if not record.alts:
                raise InputFileError(f"{path}: record {number} ({record.chrom}:{record.pos}): no ALT allele")
            chrom = match(record.chrom, number)
            yield record, Variant(number, chrom, record.start, record.ref.upper(), tuple(a.upper() for a in
                                                                                          record.alts))
    except InputFileError:
        raise
    except (OSError, ValueError) as err:  # htslib: truncated bgzip, malformed line
        raise InputFileError(f"{path}: unreadable after record {number} ({err})") from None


@dataclass
class AllelePair:
    """The two windows of one allele on one strand, as token ids, and where the variant's tokens are."""

    ref: np.ndarray
    alt: np.ndarray
    variant_tokens: np.ndarray
    """Token indices of the reference window that hold REF's bases (masked-LM scoring)."""


def allele_windows(genome: PreparedGenome, variant: Variant, alt: str, window: int, tokenizer: KmerTokenizer,
                   strand: str) -> AllelePair | str:
    """The reference and alternative windows of one allele, or the flag that says why there are none."""
    k, ref_len = tokenizer.k, len(variant.ref)
    left = (window // 2) // k * k
    right = max(window - left - ref_len, 0)
    start, end = variant.start - left, variant.start + ref_len + right
    if start < 0 or end > genome.chromosome(variant.chrom).length:
        return "EDGE"
    ref = np.asarray(genome.bases(variant.chrom, start, end), dtype=np.uint8) & CODE_MASK
    alt_codes = np.concatenate([ref[:left], pack(alt) & CODE_MASK, ref[left + ref_len:]])
    first, last = left, left + ref_len  # REF's bases in the reference window
    if strand == "-":
        ref, alt_codes = reverse_complement_packed(ref), reverse_complement_packed(alt_codes)
        first, last = len(ref) - last, len(ref) - first
    held = np.arange(first // k, (last - 1) // k + 1)
    encode = tokenizer.encode_packed
    return AllelePair(encode(ref).astype(np.int64), encode(alt_codes).astype(np.int64), held)


@dataclass(frozen=True)
class VariantTile:
    """A stretch of one strand of the genome whose reference pass the variants in it share."""

    chrom: str
    start: int
    end: int
    strand: str


@dataclass
class AlleleReading:
    """One allele on one strand as the causal scorer reads it: the tile's tokens before the variant (the prefix the
    reference and the alternative share), then each allele's own tokens followed by `span` bases of the genome."""

    tile: VariantTile
    first: int
    """Index, in the tile's reading, of the first token that holds a base of the variant."""
    ref: np.ndarray
    """Reference tokens from `first` on."""
    alt: np.ndarray
    """Alternative tokens from `first` on."""


def tile_bounds(length: int, start: int, ref_len: int, window: int, k: int) -> tuple[int, int] | None:
    """The tile [t0, t0 + window) that reads a variant at `start`: tiles start every window/2 bases (whole k-mers),
    and a variant belongs to the one where it sits at least window/4 from either end (so it has that much context
    before it on both strands, and a window/4 span after it). None when the contig's ends leave no such tile."""
    window = window // k * k
    quarter, stride = max((window // 4) // k * k, k), max((window // 2) // k * k, k)
    if window > length or start < quarter or start + ref_len + quarter > length:
        return None
    t0 = min((start - quarter) // stride * stride, (length - window) // k * k)
    return t0, t0 + window


def allele_reading(genome: PreparedGenome, variant: Variant, alt: str, window: int, tokenizer: KmerTokenizer,
                   strand: str, span: int | None = None) -> AlleleReading | str:
    """How the causal scorer reads one allele on one strand (docs/variants.md, "The windows and the formulas"): the
    tile's bases before it, the allele, then `span` bases (default window/4) after it; or the flag that says why it
    cannot be read."""
    k, ref_len = tokenizer.k, len(variant.ref)
    length = genome.chromosome(variant.chrom).length
    tile = tile_bounds(length, variant.start, ref_len, window, k)
    span = max((window // k * k // 4) // k * k, k) if span is None else max(span, k - 1)  # every allele fills a token
    if tile is None or variant.start < span or variant.start + ref_len + span > length:
        return "EDGE"
    t0, t1 = tile
    lo, hi = variant.start - span, variant.start + ref_len + span   # the allele and `span` bases on each side
    codes = np.asarray(genome.bases(variant.chrom, lo, hi), dtype=np.uint8) & CODE_MASK
    alt_codes = np.concatenate([codes[:span], pack(alt) & CODE_MASK, codes[span + ref_len:]])
    if strand == "-":
        codes, alt_codes = reverse_complement_packed(codes), reverse_complement_packed(alt_codes)
        allele_at = t1 - (variant.start + ref_len)   # the allele's first base in the reverse-complement reading
        if allele_at < k:
            return "EDGE"   # an allele so long that the tile holds no token before it on this strand
    else:
        allele_at = variant.start - t0
    first = allele_at // k
    lead = allele_at - first * k                      # bases of the prefix inside the variant's first token
    encode = tokenizer.encode_packed
    ref = encode(codes[span - lead:]).astype(np.int64)
    alt_ids = encode(alt_codes[span - lead:]).astype(np.int64)
    return AlleleReading(VariantTile(variant.chrom, t0, t1, strand), first, ref, alt_ids)


def label_of(table: dict, record, chrom: str, a: int) -> tuple[int | None, tuple | None]:
    """ALT `a`'s label in a labels TSV and the key of its row: a row may name the contig as the VCF does (`record`'s)
    or as the FASTA does (`chrom`, after `chr`-prefix matching)."""
    for name in dict.fromkeys((record.chrom, chrom)):
        key = (name, record.pos, record.ref.upper(), record.alts[a].upper())
        if key in table:
            return table[key], key
    return None, None


def unused_label_rows(table: dict, matched: set, tsv: str | Path, vcf: str | Path) -> str | None:
    """`N of M rows of TSV name no ALT of VCF (first: ...)` for the rows of a labels TSV that no ALT matched (a
    typo'd contig or allele, another build), or None when every row was used."""
    unmatched = [key for key in table if key not in matched]
    if not unmatched:
        return None
    chrom, pos, ref, alt = unmatched[0]
    return f"{len(unmatched)} of {len(table)} rows of {tsv} name no ALT of {vcf} (first: {chrom}:{pos} {ref}>{alt})"


def read_label_tsv(path: str | Path) -> dict[tuple[str, int, str, str], int]:
    """(chrom, 1-based pos, REF, ALT) -> 0/1 from a TSV with a header `chrom pos ref alt label`."""
    labels = {}
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle, delimiter="\t")
        missing = {"chrom", "pos", "ref", "alt", "label"} - set(rows.fieldnames or [])
        if missing:
            raise InputFileError(f"{path}: labels TSV needs the columns chrom pos ref alt label ({sorted(missing)} "
                                 "missing)")
        lines = {}
        for line, row in enumerate(rows, start=2):
            if row["label"] not in ("0", "1"):
                raise InputFileError(f"{path}: line {line}: label must be 0 or 1, got {row['label']!r}")
            if not (row["pos"] or "").isdigit() or int(row["pos"]) < 1:
                raise InputFileError(f"{path}: line {line}: pos must be a 1-based position, got {row['pos']!r}")
            key = (row["chrom"], int(row["pos"]), (row["ref"] or "").upper(), (row["alt"] or "").upper())
            if labels.get(key, int(row["label"])) != int(row["label"]):
                raise InputFileError(f"{path}: line {line}: {key[0]}:{key[1]} {key[2]}>{key[3]} is labelled "
                                     f"{row['label']} here and {labels[key]} on line {lines[key]}")
            labels[key], lines[key] = int(row["label"]), line
    return labels


def info_label(record: pysam.VariantRecord, a: int, field: str, path: str | Path) -> int | None:
    """The 0/1 label of ALT `a` from an INFO field: a Flag (present 1, absent 0) or an Integer 0/1 (per ALT or per
    record; missing: unlabelled, None). Any other type or value is a one-line error."""
    meta = record.header.info.get(field)
    if meta is None:
        raise InputFileError(f"{path}: label INFO field {field} is not declared in the header")
    if meta.type == "Flag":
        return int(field in record.info)
    if meta.type != "Integer":
        raise InputFileError(f"{path}: label INFO field {field} is {meta.type}; a label must be a Flag or 0/1 Integer")
    value = record.info.get(field)
    value = value[a] if isinstance(value, tuple) else value
    if value not in (None, 0, 1):
        raise InputFileError(f"{path}: {record.chrom}:{record.pos}: label {field}={value} is not 0 or 1")
    return value
