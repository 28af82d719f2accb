"""Genomic intervals: strict BED reading (errors give file and line) and the set operations splits need."""

from __future__ import annotations

import gzip
import io
import os
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from genomenet.errors import InputFileError


@dataclass(frozen=True, order=True)
class Interval:
    """A 0-based half-open interval [start, end) on one record, as in BED."""

    chrom: str
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Region:
    """A BED record as downstream commands read it: the interval, its name (column 4) and strand (column 6)."""

    chrom: str
    start: int
    end: int
    name: str = ""
    strand: str = "+"
    """'+', '-', or '.' (no strand: read as '+')."""
    line: int = field(default=0, compare=False)
    """Line of the BED file it came from (for errors); 0 when not read from a file."""

    @property
    def length(self) -> int:
        return self.end - self.start

    @property
    def reading_strand(self) -> str:
        """The strand a model reads: '-' reverse complements, '+' and '.' read the sequence as given."""
        return "-" if self.strand == "-" else "+"


def read_bed(path: str | os.PathLike, lengths: dict[str, int] | None = None) -> list[Interval]:
    """Intervals of a BED file (plain or gzip; extra columns ignored; header, track and browser lines skipped).

    With `lengths`, an interval on an unknown record or past its record's end is an error naming the line.
    """
    return [Interval(r.chrom, r.start, r.end) for r in _read_records(path, lengths, stranded=False)]


def read_bed_regions(path: str | os.PathLike, lengths: dict[str, int] | None = None) -> list[Region]:
    """Records of a BED file with name (column 4, else '') and strand (column 6: '+', '-' or '.'; else '+').

    With `lengths`, a record on an unknown chromosome or past its end is an error naming the line; so is a file
    without records, and a strand in column 5 (the score) of a five-column line (its minus-strand regions would
    silently be read on the plus strand).
    """
    regions = _read_records(path, lengths, stranded=True)
    if not regions:
        raise InputFileError(f"{path}: no BED records (expected tab-separated 'chrom start end' lines)")
    return regions


def _read_records(path: str | os.PathLike, lengths: dict[str, int] | None, stranded: bool) -> list[Region]:
    path = Path(path)
    if not path.exists() or path.is_dir():   # a pipe (`<(zcat regions.bed.gz)`) is no regular file
        raise InputFileError(f"{path}: {'a folder, not a' if path.is_dir() else 'no such'} BED file")
    try:
        with open_text(path) as handle:
            return [
                _parse_line(path, number, line, lengths, stranded)
                for number, line in enumerate(handle, start=1)
                if line.strip() and not is_header(line)
            ]
    except (UnicodeDecodeError, EOFError, OSError, zlib.error) as err:   # zlib.error: corrupt gzip data
        raise InputFileError(f"{path}: not a readable BED text file ({err})") from None


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """A plain or gzip text file, opened once so that a pipe works too: gzip told by its first two bytes, universal
    newlines, a byte-order mark dropped (no part of the first name)."""
    with open(path, "rb") as raw:
        binary = gzip.GzipFile(fileobj=raw) if raw.peek(2)[:2] == b"\x1f\x8b" else raw
        yield io.TextIOWrapper(binary, encoding="utf-8-sig", newline=None)


def is_header(line: str) -> bool:
    """A comment, or a UCSC `track` / `browser` line (the word alone, then its settings): not a contig named
    `track1` or `browser_2`."""
    return line.startswith("#") or line.split(maxsplit=1)[0] in ("track", "browser")


def missing_chromosome_hint(chrom: str, names: list[str]) -> str:
    """Why a chromosome name is not in a FASTA, when the cause is a 'chr' prefix on one side only."""
    alternative = chrom.removeprefix("chr") if chrom.startswith("chr") else f"chr{chrom}"
    if alternative in names:
        side = "the BED has a 'chr' prefix that the FASTA lacks" if chrom.startswith("chr") else (
            "the FASTA has a 'chr' prefix that the BED lacks")
        return f" ({side}: the FASTA calls it '{alternative}')"
    shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
    return f" (the FASTA has {shown})"


def _parse_line(path: Path, number: int, line: str, lengths: dict[str, int] | None, stranded: bool) -> Region:
    fields = line.rstrip("\r\n").split("\t")
    where = f"{path}: line {number}"
    if len(fields) < 3:
        raise InputFileError(f"{where}: expected tab-separated 'chrom start end', got {line.strip()!r}")
    try:
        start, end = int(fields[1]), int(fields[2])
    except ValueError:
        raise InputFileError(f"{where}: start and end must be integers, got {fields[1]!r} {fields[2]!r}") from None
    chrom = fields[0]
    if not 0 <= start < end:
        raise InputFileError(f"{where}: interval {chrom}:{start}-{end} needs 0 <= start < end")
    if lengths is not None:
        if chrom not in lengths:
            hint = missing_chromosome_hint(chrom, list(lengths))
            raise InputFileError(f"{where}: chromosome '{chrom}' is not in the FASTA{hint}")
        if end > lengths[chrom]:
            raise InputFileError(
                f"{where}: interval {chrom}:{start}-{end} is outside its chromosome (length {lengths[chrom]})"
            )
    name = fields[3] if len(fields) > 3 else ""
    if stranded and len(fields) == 5 and fields[4].strip() in ("+", "-"):
        raise InputFileError(f"{where}: {fields[4].strip()!r} in column 5, the score: the strand goes in column 6 "
                             "(BED6: chrom start end name score strand)")
    strand = fields[5].strip() if len(fields) > 5 else "+"
    if strand not in ("+", "-", "."):
        raise InputFileError(f"{where}: strand (column 6) must be '+', '-' or '.', got {strand!r}")
    return Region(chrom, start, end, name, strand, number)


def merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, with overlapping or touching intervals joined."""
    merged: list[Interval] = []
    for iv in sorted(intervals):
        if merged and merged[-1].chrom == iv.chrom and iv.start <= merged[-1].end:
            last = merged.pop()
            iv = Interval(iv.chrom, last.start, max(last.end, iv.end))
        merged.append(iv)
    return merged


def subtract(regions: list[Interval], holes: list[Interval]) -> list[Interval]:
    """Parts of `regions` outside every hole (used to keep held-out intervals out of training)."""
    by_chrom: dict[str, list[Interval]] = {}
    for hole in merge(holes):
        by_chrom.setdefault(hole.chrom, []).append(hole)
    out = []
    for region in merge(regions):
        start = region.start
        for hole in by_chrom.get(region.chrom, []):
            if hole.end <= start or hole.start >= region.end:
                continue
            if hole.start > start:
                out.append(Interval(region.chrom, start, hole.start))
            start = max(start, hole.end)
        if start < region.end:
            out.append(Interval(region.chrom, start, region.end))
    return out
