"""Per-base multi-label targets from a genome annotation (GFF3, GTF or BED tracks) for single-base segmentation.

Every base of every FASTA contig gets a uint32 bit mask; bit i is set when the base belongs to `classes[i]`. Rules:

- Labels are strand-agnostic, in genome (forward-strand) coordinates: a base is `exon` when any transcript on either
  strand has an exon over it. Classes overlap freely (exon of one transcript, intron of another).
- gene: inside a feature whose type ends in "gene" (gene, pseudogene, ncRNA_gene, transposable_element_gene, ...), and
  inside the exon span of each transcript (GFF3) or of each gene_id (GTF), so a GTF without gene lines has genes.
- exon, CDS: from their features (exon types: exon, pseudogenic_exon, noncoding_exon). `start_codon`/`stop_codon`
  count as CDS: a GTF's CDS leaves the stop codon out, a GFF3's keeps it in. A transcript with CDS but no exons
  (a prokaryote's gene -> CDS) uses its CDS as exons.
- Transcripts are what exons and CDS name as parent: each ID of a GFF3 `Parent=a,b`, or the GTF `transcript_id`.
- intron: the gaps between consecutive exons of one transcript, united with `intron` features if the file has any.
- splice_donor / splice_acceptor: the first / last 2 bases of each such gap in transcript orientation; on the minus
  strand the donor is the gap's 2 highest-coordinate bases. Strand '.' or '?' reads as '+'.
- five_prime_UTR / three_prime_UTR: exon bases of a coding transcript before its first / after its last CDS base in
  transcript orientation, united with the file's UTR features (five_prime_UTR, 5UTR, five_prime_utr, ...; a GTF's
  generic `UTR` is left to this derivation, which tells 5' from 3').
- intergenic: bases in no gene.
- More classes after the 9 core ones (always present, even with 0 bases): the AUTO_TYPES the file has (pseudogene,
  tRNA, rRNA, ncRNA, lnc_RNA, miRNA, snRNA, snoRNA, transposable_element, mobile_genetic_element: their feature
  spans), then every `extra_types` entry (kept even with 0 bases, so one config gives the same columns on every
  genome). A pseudogene is also a gene, by the "ends in gene" rule. At most 32 classes (a uint32 mask).
- Contigs: a seqid names a FASTA contig exactly, or after dropping a chr/Chr/CHR prefix on either side (chr1 = 1 =
  Chr1). Records on contigs the FASTA lacks are skipped and counted (a whole-genome annotation with a one-chromosome
  FASTA; `summary()` reports them); it is an error only when no record lands on the FASTA.

A window read on the reverse strand takes its label rows reversed (`reverse=True`); the classes do not change.
Masks cost 4 bytes per base of the FASTA (TAIR10 chr1, 30 Mb: 120 MB); reading that annotation takes a few seconds.
"""

from __future__ import annotations

import os
import re
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genomenet.data.intervals import open_text, read_bed_regions
from genomenet.errors import ConfigError, InputFileError

CORE_CLASSES = ("gene", "exon", "CDS", "intron", "five_prime_UTR", "three_prime_UTR", "splice_donor",
                "splice_acceptor", "intergenic")
AUTO_TYPES = ("pseudogene", "tRNA", "rRNA", "ncRNA", "lnc_RNA", "miRNA", "snRNA", "snoRNA", "transposable_element",
              "mobile_genetic_element")
"""Feature types that become classes by themselves when the file has them."""
EXON_TYPES = frozenset({"exon", "pseudogenic_exon", "noncoding_exon"})
CDS_TYPES = frozenset({"CDS", "start_codon", "stop_codon"})
UTR_TYPES = {
    "five_prime_UTR": frozenset({"five_prime_UTR", "five_prime_utr", "5UTR", "5'UTR", "UTR5", "5utr"}),
    "three_prime_UTR": frozenset({"three_prime_UTR", "three_prime_utr", "3UTR", "3'UTR", "UTR3", "3utr"}),
}
MAX_CLASSES = 32
_CHUNK = 1 << 20
_BITS_OF_BYTE = (np.arange(256)[:, None] >> np.arange(8)) & 1                  # (256, 8)
_GFF3_PARENT = re.compile(r"(?:^|;)\s*Parent=([^;]*)")
_GTF_ID = re.compile(r'(gene_id|transcript_id)\s+"?([^";]*)"?')


@dataclass
class BaseLabels:
    """Per-base multi-label targets of a genome: one bit mask per FASTA contig."""

    classes: tuple[str, ...]
    """Class names in column order: bit i of a mask, column i of `labels`."""
    masks: dict[str, np.ndarray]
    """Contig name (as in the FASTA) -> (length,) uint32 bit mask."""
    source: str
    """The file(s) read, for messages."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Records skipped per annotation seqid that names no FASTA contig."""
    _counts: dict[str, int] | None = field(default=None, init=False, repr=False, compare=False)

    def labels(self, chrom: str, start: int, end: int, reverse: bool = False) -> np.ndarray:
        """(end - start, n_classes) uint8 0/1 of [start, end); 0 past the contig's ends; rows reversed with
        `reverse` (a reverse-complemented window)."""
        bits = self._bits(chrom, start, end)                                            # (n,) uint32
        rows = np.unpackbits(bits.view(np.uint8).reshape(-1, 4), axis=1, bitorder="little")  # (n, 32)
        rows = rows[::-1] if reverse else rows
        return np.ascontiguousarray(rows[:, : len(self.classes)])

    def known(self, chrom: str, start: int, end: int, reverse: bool = False) -> np.ndarray:
        """(end - start,) bool: True on the contig, False before 0 and past its end."""
        positions = np.arange(start, end)
        inside = (positions >= 0) & (positions < len(self._mask(chrom)))
        return inside[::-1].copy() if reverse else inside

    def class_counts(self) -> dict[str, int]:
        """Bases per class over all contigs."""
        if self._counts is None:
            histograms = np.zeros((4, 256), dtype=np.int64)                      # (byte of the mask, its value)
            for mask in self.masks.values():
                for lo in range(0, len(mask), _CHUNK):
                    chunk = np.ascontiguousarray(mask[lo : lo + _CHUNK], dtype="<u4").view(np.uint8).reshape(-1, 4)
                    for byte in range(4):
                        histograms[byte] += np.bincount(chunk[:, byte], minlength=256)
            counts = (histograms @ _BITS_OF_BYTE).reshape(32)                     # bit 8 * byte + k
            self._counts = {name: int(count) for name, count in zip(self.classes, counts)}
        return dict(self._counts)

    def summary(self) -> str:
        """One line per class with its bases and their share of the genome, for the run output."""
        total = sum(len(mask) for mask in self.masks.values())
        lines = [f"labels of {self.source}: {len(self.classes)} classes, {len(self.masks)} contigs, {total:,} bp"]
        for name, count in self.class_counts().items():
            note = "  (none in the annotation)" if count == 0 else ""
            lines.append(f"  {name:<24}{count:>14,} bp {count / max(total, 1):8.2%}{note}")
        if self.skipped:
            lines.append(f"  skipped {sum(self.skipped.values()):,} records on {len(self.skipped)} contigs not in "
                         f"the FASTA ({_some(list(self.skipped))})")
        return "\n".join(lines)

    def _mask(self, chrom: str) -> np.ndarray:
        try:
            return self.masks[chrom]
        except KeyError:
            raise KeyError(f"no contig '{chrom}' in the labels of {self.source} (they have "
                           f"{_some(list(self.masks))})") from None

    def _bits(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Masks of [start, end), zero outside the contig."""
        if end < start:
            raise ValueError(f"window {chrom}:{start}-{end} ends before it starts")
        mask = self._mask(chrom)
        out = np.zeros(end - start, dtype="<u4")
        lo, hi = max(start, 0), min(end, len(mask))
        if lo < hi:
            out[lo - start : hi - start] = mask[lo:hi]
        return out


def read_annotation(path: str | os.PathLike, contig_lengths: dict[str, int],
                    extra_types: Sequence[str] = ()) -> BaseLabels:
    """Per-base labels of a GFF3 or GTF (plain or gzip; told apart by the attribute syntax, else the extension).

    Raises `InputFileError` naming the file and line for a malformed feature line, a feature past its contig's end,
    a file with no feature on the FASTA's contigs, or no gene or exon features.
    """
    path = Path(path)
    found = _collect(path, contig_lengths, frozenset(extra_types))
    if not (found.spans["gene"] or found.spans["exon"] or found.parts["exon"]):
        types = ", ".join(t for t, _ in found.types.most_common(5)) or "none"
        raise InputFileError(f"{path}: no gene or exon features on the FASTA's contigs (the most common types are "
                             f"{types}): per-base labels need genes and their exons")
    spans = {name: _rows(rows) for name, rows in found.spans.items()}
    for name, rows in _transcript_classes(found).items():
        spans[name] = np.concatenate([spans.get(name, _rows([])), rows])
    extra = [t for t in dict.fromkeys(extra_types) if t not in CORE_CLASSES]
    classes = CORE_CLASSES + tuple(t for t in AUTO_TYPES if len(spans.get(t, ())) and t not in extra) + tuple(extra)
    masks = _rasterise(_checked(classes), spans, contig_lengths)
    gene, intergenic = (np.uint32(1 << classes.index(name)) for name in ("gene", "intergenic"))
    for mask in masks.values():
        np.bitwise_or(mask, intergenic, out=mask, where=(mask & gene) == 0)
    return BaseLabels(classes, masks, str(path), dict(found.skipped))


def read_bed_tracks(tracks: Mapping[str, str | os.PathLike], contig_lengths: dict[str, int]) -> BaseLabels:
    """Per-base labels from one BED file per class (class name -> path): a base in an interval has that class.

    Records on contigs the FASTA lacks are skipped and counted; a track with none on the FASTA, or one past its
    contig's end, is an `InputFileError` naming the file and line.
    """
    if not tracks:
        raise ConfigError("read_bed_tracks needs at least one BED track (class name -> BED file)")
    resolve, index = _contig_resolver(contig_lengths), {name: i for i, name in enumerate(contig_lengths)}
    spans, skipped = {}, Counter()
    for name, path in tracks.items():
        rows, first_missing = [], None
        for region in read_bed_regions(path):
            contig = resolve(region.chrom)
            if contig is None:
                skipped[region.chrom] += 1
                first_missing = first_missing or region
                continue
            if region.end > contig_lengths[contig]:
                raise InputFileError(f"{path}: line {region.line}: interval {region.chrom}:{region.start}-"
                                     f"{region.end} ends past contig '{contig}' (length {contig_lengths[contig]:,})")
            rows.append((index[contig], region.start, region.end))
        if not rows:
            raise _nothing_on_fasta(path, first_missing.line, first_missing.chrom, contig_lengths)
        spans[name] = _rows(rows)
    masks = _rasterise(_checked(tuple(tracks)), spans, contig_lengths)
    return BaseLabels(tuple(tracks), masks, ", ".join(str(p) for p in tracks.values()), dict(skipped))


# reading --------------------------------------------------------------------------------------------------


class _Found:
    """Feature lines gathered: spans per class, and the exon/CDS parts of each transcript, in contig indices."""

    def __init__(self, contig_lengths: dict[str, int], extra: frozenset[str]):
        self.index = {name: i for i, name in enumerate(contig_lengths)}
        self.extra = extra
        self.spans: dict[str, list[tuple[int, int, int]]] = defaultdict(list)   # class -> (contig, start, end)
        self.parts: dict[str, list[tuple[int, int, int]]] = {"exon": [], "CDS": []}  # -> (transcript, start, end)
        self.transcripts: dict[tuple[int, bool, str], int] = {}
        self.tx_minus: list[bool] = []
        self.tx_group: list[int] = []
        self.groups: dict[tuple[int, str], int] = {}
        self.group_contig: list[int] = []
        self.types: Counter[str] = Counter()
        self.skipped: Counter[str] = Counter()
        self._classes: dict[str, tuple[str, ...]] = {}

    def add(self, contig: str, feature_type: str, start: int, end: int, minus: bool, attributes: str,
            gtf: bool) -> None:
        """One feature, 0-based half-open; the attributes are parsed only for exons and CDS."""
        c = self.index[contig]
        self.types[feature_type] += 1
        if feature_type not in self._classes:
            self._classes[feature_type] = _classes_of(feature_type, self.extra)
        for name in self._classes[feature_type]:
            self.spans[name].append((c, start, end))
        part = "exon" if feature_type in EXON_TYPES else "CDS" if feature_type in CDS_TYPES else None
        if part:
            parents, gene = _gtf_ids(attributes) if gtf else (_gff3_parents(attributes), None)
            for parent in parents:
                self.parts[part].append((self._transcript(c, minus, parent, gene or parent), start, end))

    def _transcript(self, contig: int, minus: bool, name: str, gene: str) -> int:
        key = (contig, minus, name)
        if key not in self.transcripts:
            self.transcripts[key] = len(self.tx_minus)
            self.tx_minus.append(minus)
            self.tx_group.append(self.groups.setdefault((contig, gene), len(self.groups)))
            if len(self.group_contig) < len(self.groups):
                self.group_contig.append(contig)
        return self.transcripts[key]


def _classes_of(feature_type: str, extra: frozenset[str]) -> tuple[str, ...]:
    """The classes one feature type paints directly (transcript-derived classes come later)."""
    names = ["gene"] if feature_type.lower().endswith("gene") else []
    names += ["exon"] if feature_type in EXON_TYPES else []
    names += ["CDS"] if feature_type in CDS_TYPES else []
    names += ["intron"] if feature_type == "intron" else []
    names += [utr for utr, types in UTR_TYPES.items() if feature_type in types]
    names += [feature_type] if feature_type in AUTO_TYPES or feature_type in extra else []
    return tuple(dict.fromkeys(names))


def _collect(path: Path, contig_lengths: dict[str, int], extra: frozenset[str]) -> _Found:
    found, resolve = _Found(contig_lengths, extra), _contig_resolver(contig_lengths)
    syntax_gtf, extension_gtf = None, path.name.lower().removesuffix(".gz").endswith(".gtf")
    first_missing, lines = None, 0
    for number, line in _lines(path):
        fields = line.rstrip("\r\n").split("\t")
        where = f"{path}: line {number}"
        if len(fields) != 9:
            raise InputFileError(f"{where}: expected 9 tab-separated columns (GFF3/GTF), got {len(fields)}: "
                                 f"{line.strip()[:80]!r}")
        lines += 1
        start, end = _coordinates(fields, where)
        contig = resolve(fields[0])
        if contig is None:
            found.skipped[fields[0]] += 1
            first_missing = first_missing or (number, fields[0])
            continue
        if end > contig_lengths[contig]:
            raise InputFileError(f"{where}: feature {fields[0]}:{start}-{end} ends past contig '{contig}' (length "
                                 f"{contig_lengths[contig]:,} in the FASTA)")
        syntax_gtf = _attribute_syntax_is_gtf(fields[8]) if syntax_gtf is None else syntax_gtf
        gtf = extension_gtf if syntax_gtf is None else syntax_gtf
        found.add(contig, fields[2], start - 1, end, fields[6] == "-", fields[8], gtf)
    if not lines:
        raise InputFileError(f"{path}: no feature lines (the file is empty or only comments)")
    if not found.types:
        raise _nothing_on_fasta(path, *first_missing, contig_lengths)
    return found


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) of the feature lines: no blanks or comments, nothing after a GFF3 `##FASTA`."""
    if not path.exists() or path.is_dir():   # a pipe (`<(zcat genes.gff3.gz)`) is no regular file
        raise InputFileError(f"{path}: {'a folder, not an' if path.is_dir() else 'no such'} annotation file")
    try:
        with open_text(path) as handle:
            for number, line in enumerate(handle, start=1):
                if line.startswith("##FASTA"):
                    return
                if line.strip() and not line.startswith("#"):
                    yield number, line
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:   # zlib.error: corrupt gzip data
        raise InputFileError(f"{path}: not a readable GFF3/GTF text file ({err})") from None


def _coordinates(fields: list[str], where: str) -> tuple[int, int]:
    """1-based inclusive start and end of a feature line."""
    try:
        start, end = int(fields[3]), int(fields[4])
    except ValueError:
        raise InputFileError(f"{where}: start and end (columns 4 and 5) must be integers, got {fields[3]!r} "
                             f"{fields[4]!r}") from None
    if not 1 <= start <= end:
        raise InputFileError(f"{where}: feature {fields[0]}:{start}-{end} needs 1 <= start <= end (GFF "
                             "coordinates are 1-based and inclusive)")
    return start, end


def _attribute_syntax_is_gtf(attributes: str) -> bool | None:
    """GTF writes `key "value";`, GFF3 `key=value`; None when the column says neither."""
    if re.match(r'\s*[\w.]+\s+"', attributes):
        return True
    return False if "=" in attributes else None


def _gff3_parents(attributes: str) -> list[str]:
    match = _GFF3_PARENT.search(attributes)
    return match.group(1).split(",") if match else []


def _gtf_ids(attributes: str) -> tuple[list[str], str | None]:
    ids = dict(_GTF_ID.findall(attributes))
    return ([ids["transcript_id"]] if "transcript_id" in ids else []), ids.get("gene_id")


def _contig_resolver(contig_lengths: Iterable[str]) -> Callable[[str], str | None]:
    """seqid -> FASTA contig: the same name, else the same after dropping a chr/Chr/CHR prefix on either side."""
    names = list(contig_lengths)
    bare: dict[str, str] = {}
    for name in names:
        bare.setdefault(_bare(name), name)
    memo = {name: name for name in names}

    def resolve(seqid: str) -> str | None:
        if seqid not in memo:
            memo[seqid] = bare.get(_bare(seqid))
        return memo[seqid]

    return resolve


def _bare(name: str) -> str:
    return name[3:] if name[:3].lower() == "chr" else name


def _nothing_on_fasta(path, line: int, seqid: str, contig_lengths: dict[str, int]) -> InputFileError:
    return InputFileError(f"{path}: line {line}: contig '{seqid}' matches no FASTA contig, and no other record does "
                          f"either (the FASTA has {_some(list(contig_lengths))})")


def _some(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


# transcript structure -------------------------------------------------------------------------------------


def _rows(rows: list | np.ndarray) -> np.ndarray:
    """(k, 3) int64: contig or transcript index, start, end (0-based, half-open)."""
    return np.asarray(rows, dtype=np.int64).reshape(-1, 3)


def _transcript_classes(found: _Found) -> dict[str, np.ndarray]:
    """Exons of CDS-only transcripts, introns, splice sites, UTRs and gene spans, as (contig, start, end) rows."""
    minus, group = np.array(found.tx_minus, dtype=bool), np.array(found.tx_group, dtype=np.int64)
    contig = np.array(found.group_contig, dtype=np.int64)[group] if len(group) else group   # per transcript
    exons, cds = _rows(found.parts["exon"]), _rows(found.parts["CDS"])
    has_exon = np.zeros(len(minus), dtype=bool)
    has_exon[exons[:, 0]] = True
    exons = np.concatenate([exons, cds[~has_exon[cds[:, 0]]]])
    per_transcript = {"exon": exons, **_introns(exons, minus), **_utrs(exons, cds, minus)}
    out = {name: np.column_stack([contig[rows[:, 0]], rows[:, 1:]]) for name, rows in per_transcript.items()}
    out["gene"] = _gene_spans(exons, group, np.array(found.group_contig, dtype=np.int64))
    return out


def _introns(exons: np.ndarray, minus: np.ndarray) -> dict[str, np.ndarray]:
    """Gaps between the exons of each transcript, and their 2-base donor and acceptor ends (transcript rows)."""
    exons = exons[np.lexsort((exons[:, 1], exons[:, 0]))]                   # by transcript, then start
    tx, start, end = exons.T
    offset = tx * (int(end.max(initial=0)) + 1)
    reach = np.maximum.accumulate(end + offset) - offset                     # furthest exon end so far, per transcript
    gap = (tx[1:] == tx[:-1]) & (start[1:] > reach[:-1])
    tx, lo, hi = tx[1:][gap], reach[:-1][gap], start[1:][gap]
    two = np.minimum(hi - lo, 2)
    head, tail = np.column_stack([tx, lo, lo + two]), np.column_stack([tx, hi - two, hi])
    flip = minus[tx][:, None]
    return {"intron": np.column_stack([tx, lo, hi]), "splice_donor": np.where(flip, tail, head),
            "splice_acceptor": np.where(flip, head, tail)}


def _utrs(exons: np.ndarray, cds: np.ndarray, minus: np.ndarray) -> dict[str, np.ndarray]:
    """Exon parts of coding transcripts before and after their CDS, named in transcript orientation."""
    first, last = np.full(len(minus), np.iinfo(np.int64).max), np.full(len(minus), -1)
    np.minimum.at(first, cds[:, 0], cds[:, 1])
    np.maximum.at(last, cds[:, 0], cds[:, 2])
    tx, start, end = exons.T
    coding = last[tx] >= 0
    left = coding & (start < first[tx])
    right = coding & (end > last[tx])
    lows = np.column_stack([tx, start, np.minimum(end, first[tx])])
    highs = np.column_stack([tx, np.maximum(start, last[tx]), end])
    rev = minus[tx]
    return {"five_prime_UTR": np.concatenate([lows[left & ~rev], highs[right & rev]]),
            "three_prime_UTR": np.concatenate([highs[right & ~rev], lows[left & rev]])}


def _gene_spans(exons: np.ndarray, group: np.ndarray, group_contig: np.ndarray) -> np.ndarray:
    """From the first to the last exon base of each gene group (GTF gene_id; GFF3 transcript)."""
    g = group[exons[:, 0]]
    lo, hi = np.full(len(group_contig), np.iinfo(np.int64).max), np.full(len(group_contig), -1)
    np.minimum.at(lo, g, exons[:, 1])
    np.maximum.at(hi, g, exons[:, 2])
    keep = hi >= 0
    return np.column_stack([group_contig[keep], lo[keep], hi[keep]])


# painting -------------------------------------------------------------------------------------------------


def _checked(classes: tuple[str, ...]) -> tuple[str, ...]:
    if len(classes) > MAX_CLASSES:
        raise ConfigError(f"{len(classes)} label classes ({_some(list(classes))}): a uint32 mask holds at most "
                          f"{MAX_CLASSES}; ask for fewer extra types or tracks")
    return classes


def _rasterise(classes: tuple[str, ...], spans: Mapping[str, np.ndarray],
               contig_lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """Bit masks per contig from (contig index, start, end) rows per class."""
    masks = [np.zeros(length, dtype="<u4") for length in contig_lengths.values()]
    for bit, name in enumerate(classes):
        rows = spans.get(name, _rows([]))
        rows = rows[np.argsort(rows[:, 0], kind="stable")]
        bounds = np.searchsorted(rows[:, 0], np.arange(len(masks) + 1))
        for c in np.flatnonzero(np.diff(bounds)):
            _paint(masks[c], bit, rows[bounds[c] : bounds[c + 1], 1], rows[bounds[c] : bounds[c + 1], 2])
    return dict(zip(contig_lengths, masks))


def _paint(mask: np.ndarray, bit: int, starts: np.ndarray, ends: np.ndarray) -> None:
    """Set `bit` on every base some [start, end) covers: merge into disjoint runs, then sum a 0/1 difference array."""
    keep = ends > starts
    order = np.argsort(starts[keep], kind="stable")
    starts, ends = starts[keep][order], ends[keep][order]
    reach = np.maximum.accumulate(ends)
    first = np.flatnonzero(np.r_[True, starts[1:] > reach[:-1]])        # no earlier interval reaches these
    inside = np.zeros(len(mask) + 1, dtype=np.int8)
    inside[starts[first]] = 1
    inside[reach[np.r_[first[1:] - 1, len(starts) - 1]]] = -1           # run ends, never a run start
    np.cumsum(inside, dtype=np.int8, out=inside)
    np.bitwise_or(mask, np.uint32(1 << bit), out=mask, where=inside[:-1].view(bool))
