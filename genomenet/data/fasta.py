"""FASTA files (plain, gzip, bgzip) read through pyfaidx, with errors that name the file and the record or line.

pyfaidx slices a record from its `.fai` (and, for bgzip, `.gzi`) index, so a chromosome is never one Python string
beyond the slice asked for. The index files go where the caller says (the cache), because genomes often sit in
read-only folders. pyfaidx cannot index plain gzip, so such files are decompressed once, streaming, into the cache.
"""

from __future__ import annotations

import gzip
import re
import shutil
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyfaidx

from genomenet.errors import InputFileError

Compression = Literal["plain", "gzip", "bgzip"]
_GZIP_MAGIC = b"\x1f\x8b"


def compression_of(path: Path) -> Compression:
    """Sniff the compression from the first bytes: bgzip is gzip with a 'BC' extra field (what pyfaidx needs)."""
    with open(path, "rb") as handle:
        head = handle.read(18)
    if not head.startswith(_GZIP_MAGIC):
        return "plain"
    has_extra = len(head) >= 4 and head[3] & 0x04
    return "bgzip" if has_extra and head[12:14] == b"BC" else "gzip"


OTHER_COMPRESSIONS = {"bzip2": b"BZh", "xz": b"\xfd7zXZ\x00", "zstd": b"\x28\xb5\x2f\xfd", "zip": b"PK\x03\x04"}
"""Magic bytes of archives pyfaidx cannot read, named instead of its 'BGZF only' or a UTF-8 decoding error."""


def check_readable(path: Path) -> None:
    """Fail early, in one line, on a missing, empty or foreign file (a folder, another archive format, a byte-order
    mark)."""
    if path.is_dir():
        raise InputFileError(f"{path}: a folder, not a FASTA file; name the FASTA file in it")
    if not path.is_file():
        raise InputFileError(f"{path}: no such FASTA file")
    if path.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file, expected FASTA records ('>name' then sequence lines)")
    with open(path, "rb") as handle:
        magic = handle.read(6)
    for format_name, prefix in OTHER_COMPRESSIONS.items():
        if magic.startswith(prefix):
            raise InputFileError(f"{path}: a {format_name} file; FASTA is read as plain text, gzip or bgzip "
                                 "(decompress it, or recompress it with bgzip)")
    try:
        with (open if compression_of(path) == "plain" else gzip.open)(path, "rb") as handle:
            bom = handle.read(3) == b"\xef\xbb\xbf"
    except (OSError, EOFError):
        return   # a corrupt archive is named when it is read
    if bom:
        raise InputFileError(f"{path}: starts with a UTF-8 byte-order mark (a Windows editor's); save the FASTA "
                             "without it")


def decompress_gzip(source: Path, dest: Path, chunk_bytes: int = 4 << 20) -> None:
    """Stream a plain-gzip FASTA to `dest` in bounded memory; a truncated or corrupt archive is a user error."""
    try:
        with gzip.open(source, "rb") as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, chunk_bytes)
    except (EOFError, zlib.error, gzip.BadGzipFile) as err:
        raise InputFileError(f"{source}: truncated or corrupt gzip file ({err}); re-download it") from None


@dataclass(frozen=True)
class Record:
    """One FASTA record as indexed: its name, length in bases and where its sequence starts in the text."""

    name: str
    length: int
    offset: int
    line_bases: int


class FastaFile:
    """A pyfaidx-indexed FASTA whose index files live in `index_dir`; errors name `display_path`."""

    def __init__(self, text_path: Path, index_dir: Path, display_path: Path | None = None):
        self.text_path = Path(text_path)
        self.display_path = Path(display_path or text_path)
        self.bgzip = compression_of(self.text_path) == "bgzip"
        self.fai = index_dir / "source.fai"
        self.gzi = index_dir / "source.gzi" if self.bgzip else None
        self._faidx = self._open()

    def _open(self) -> pyfaidx.Faidx:
        kwargs = {"gzi_indexname": str(self.gzi)} if self.bgzip else {}
        try:
            return pyfaidx.Faidx(str(self.text_path), indexname=str(self.fai), duplicate_action="stop", **kwargs)
        except (ValueError, pyfaidx.FastaIndexingError, pyfaidx.UnsupportedCompressionFormat) as err:
            raise InputFileError(f"{self.display_path}: {self._reword(err)}") from None
        except RuntimeError as err:  # pyfaidx's "Unhandled exception during fasta indexing": two odd lines at the end
            found = re.search(r"at entry (.*)Please report .* \[\((\d+), \d+\)", str(err))
            if not found:
                raise
            line = int(found[2]) + 1
            raise InputFileError(f"{self.display_path}: {self._line_length_message(found[1], line)}") from None
        except (EOFError, OSError, zlib.error, struct.error) as err:
            raise InputFileError(f"{self.display_path}: unreadable or truncated FASTA ({err})") from None

    def _reword(self, err: Exception) -> str:
        message = str(err).replace(str(self.text_path), "the file").replace(" file the file", " file")
        if message.startswith("Duplicate key"):
            name = message.split('"')[1]
            return f"duplicate record name '{name}'; record names must be unique"
        if "does not contain a valid sequence" in message:
            return "no FASTA records (expected a line starting with '>'); is this a FASTA file?"
        unnamed = re.match(r"Bad sequence name (.*) at line (\d+)\.", message)  # pyfaidx counts lines from 0 here
        if unnamed:
            return f"line {int(unnamed[2]) + 1}: header {unnamed[1]!r} has no record name"
        line = re.search(r"at line (\d+)", message)
        if line and message.startswith("Unexpected text"):
            return f"line {line[1]}: text before the first '>' header line; is this a FASTA file?"
        record = re.search(r"found in >(\S+) at line", message)
        if line and record:
            return self._line_length_message(record[1], int(line[1]))
        return message

    def _line_length_message(self, record: str, line: int) -> str:
        """What pyfaidx's complaint about a record's line lengths means: a blank line in its sequence (the usual
        cause: records joined with blank lines between them), or a sequence line of another length."""
        blank = _misplaced_blank_line(self.text_path, record)
        if blank is not None:
            return (f"line {blank}: record '{record}': blank line in the sequence (only one blank line may end a "
                    "record); remove the blank lines")
        return (f"line {line}: record '{record}': line length differs from the record's earlier lines "
                "(sequence lines must have one length, except the last)")

    def records(self) -> list[Record]:
        """Records in file order."""
        return [
            Record(name, int(rec.rlen), int(rec.offset), int(rec.lenc))
            for name, rec in self._faidx.index.items()
        ]

    def fetch(self, name: str, start: int, end: int) -> str:
        """Bases [start, end) of a record, 0-based half-open, case kept."""
        try:
            return self._faidx.fetch(name, start + 1, end).seq
        except (EOFError, OSError, zlib.error, struct.error, ValueError) as err:
            raise InputFileError(
                f"{self.display_path}: record '{name}': cannot read bases {start}-{end} ({err}); truncated file?"
            ) from None

    def chunks(self, record: Record, chunk_bases: int) -> Iterator[tuple[int, str]]:
        """(start, bases) pieces of a record, so a chromosome is never held as one string."""
        for start in range(0, record.length, chunk_bases):
            yield start, self.fetch(record.name, start, min(record.length, start + chunk_bases))

    def line_number(self, record: Record, position: int | None = None) -> int:
        """1-based line of a record's header (position None) or of one of its bases; only for error messages."""
        if position is None:  # the newlines before the header's own (which the last line may lack)
            return _count_newlines(self.text_path, record.offset - 1) + 1
        newlines = _count_newlines(self.text_path, record.offset)
        return newlines + 1 + position // max(record.line_bases, 1)

    def close(self) -> None:
        self._faidx.close()


def _misplaced_blank_line(path: Path, record: str) -> int | None:
    """1-based line of the first blank line in `record` that pyfaidx rejects (any but one blank line that ends the
    record after a sequence line), or None (error path only: it reads the text up to the record's end)."""
    opener = gzip.open if compression_of(path) != "plain" else open
    name, pending, previous_was_sequence = None, None, False
    with opener(path, "rb") as handle:
        for number, line in enumerate(handle, 1):
            if line.startswith(b">"):
                if name == record:
                    return None
                name = (line[1:].split() or [b""])[0].decode(errors="replace")
                pending, previous_was_sequence = None, False
                continue
            if name != record:
                continue
            if pending is not None:
                return pending
            blank = not line.strip()
            if blank and not previous_was_sequence:
                return number
            pending = number if blank else None
            previous_was_sequence = not blank
    return None


def _count_newlines(path: Path, upto: int) -> int:
    """Newlines in the first `upto` uncompressed bytes (error path only: it reads the text)."""
    opener = gzip.open if compression_of(path) != "plain" else open
    count, left = 0, upto
    with opener(path, "rb") as handle:
        while left > 0:
            block = handle.read(min(left, 4 << 20))
            if not block:
                break
            count += block.count(b"\n")
            left -= len(block)
    return count


def open_fasta_text(path: Path, index_dir: Path) -> FastaFile:
    """Index a FASTA into `index_dir`, decompressing plain gzip there first (pyfaidx cannot index it)."""
    path = Path(path)
    check_readable(path)
    text = path
    if compression_of(path) == "gzip":
        text = index_dir / "source.fa"
        decompress_gzip(path, text)
    if text.stat().st_size == 0:
        raise InputFileError(f"{path}: empty file, expected FASTA records ('>name' then sequence lines)")
    return FastaFile(text, index_dir, display_path=path)
