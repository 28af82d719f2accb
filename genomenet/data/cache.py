"""The prepared genome: one uint8 memory-mapped array per chromosome, so any training window is an O(1) slice.

Layout of a cache entry `<cache_dir>/<fasta name>-<hash of its path>/`:

- `index.json`: format version, the source's size, mtime and SHA-256 of its bytes, and per chromosome its name,
  length, array file, N runs (`[[start, end), ...]`), soft-masked base count and CRC-32 of the array.
- `<i>.u8`: raw bytes, one per base: base code (A0 C1 G2 T3 N4) in the low bits, soft mask (lowercase) in bit 7.
- `source.fai` (+ `source.gzi` for bgzip, + `source.fa` for plain gzip, decompressed): pyfaidx's index, used by
  `PreparedGenome.fasta()` to read the original text.

Validity is decided by content: an entry whose source has the recorded size and mtime is trusted without reading
the FASTA; otherwise the FASTA is hashed (about 1 GB/s) and the entry kept if the SHA-256 matches (its mtime is then
re-recorded), rebuilt if not. So a FASTA rewritten or touched with the same bytes keeps its cache, while one edited in
place with the same size and its mtime forced back is missed (run `prepare` with a fresh cache then). An entry with
an unreadable index or an array of the wrong size is damaged and is rebuilt.

Builders of one entry hold an exclusive lock (`fcntl.flock` on `.<entry>.lock`, removed on release): a second
process preparing the same FASTA waits, then reuses the first one's entry. An entry is built in a private temporary
folder inside the cache, `index.json` written last, and published with one `os.replace` of the folder, so a reader
sees it complete or absent, never half written. Replacing a stale entry takes two renames under the lock: `prepare`
in another process that finds the entry absent in between waits on the lock and gets the new one; a
`PreparedGenome(folder)` opened directly in that instant (its FASTA changed under it) fails with one line. A cache
this process cannot write (shared, read-only) serves its entries without the lock while the FASTA's bytes match;
one that would need a rebuild there is one line.
Preparing streams each record in chunks: memory stays bounded by a chunk, not a chromosome.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyfaidx
from tqdm import tqdm

from genomenet.data.fasta import FastaFile, Record, check_readable, open_fasta_text
from genomenet.data.tokenizers import CODE_MASK, INVALID, N_CODE, SOFT_MASK_BIT, pack
from genomenet.errors import InputFileError

FORMAT_VERSION = 2
CHUNK_BASES = 8 << 20


def default_cache_dir() -> Path:
    """`$GENOMENET_CACHE`, else `~/.cache/genomenet`."""
    return Path(os.environ.get("GENOMENET_CACHE") or Path.home() / ".cache" / "genomenet")


def cache_entry(fasta_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """Where a FASTA's prepared arrays live: one entry per source path, readable by a human."""
    path = Path(fasta_path).resolve()
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", path.name)
    digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()) / f"{stem}-{digest}"


@dataclass(frozen=True)
class Chromosome:
    """One prepared record."""

    name: str
    length: int
    file: str
    n_runs: np.ndarray
    """(runs, 2) int64 half-open [start, end) intervals of N (and other ambiguity codes)."""
    soft_masked: int
    crc32: int


class PreparedGenome:
    """Read side of a cache entry. Pickles as its folder name: each DataLoader worker reopens its own memmaps."""

    def __init__(self, directory: str | os.PathLike):
        self.directory = Path(directory)
        try:
            index = json.loads((self.directory / "index.json").read_text())
            self.source = index["source"]
            self.chromosomes = {c["name"]: _chromosome_from_json(c) for c in index["chromosomes"]}
        except FileNotFoundError:
            raise InputFileError(f"{self.directory}: not a prepared genome (no index.json); run prepare") from None
        except (ValueError, KeyError, TypeError) as err:
            raise InputFileError(f"{self.directory}: damaged cache entry ({err!r}); run prepare again") from None
        self._maps: dict[str, np.memmap] = {}

    def __getstate__(self) -> dict:
        return {"directory": self.directory}

    def __setstate__(self, state: dict) -> None:
        self.__init__(state["directory"])

    def __repr__(self) -> str:
        return f"PreparedGenome({self.source['path']!r}, {len(self.chromosomes)} records, {self.total_length:,} bp)"

    @property
    def names(self) -> list[str]:
        return list(self.chromosomes)

    @property
    def lengths(self) -> dict[str, int]:
        return {name: c.length for name, c in self.chromosomes.items()}

    @property
    def total_length(self) -> int:
        return sum(c.length for c in self.chromosomes.values())

    def chromosome(self, name: str) -> Chromosome:
        try:
            return self.chromosomes[name]
        except KeyError:
            raise KeyError(f"no record '{name}' in {self.source['path']} (it has {_some(self.names)})") from None

    def array(self, name: str) -> np.memmap:
        """The whole record as a read-only memmap of packed bytes (nothing is read until sliced)."""
        if name not in self._maps:
            chrom = self.chromosome(name)
            size = (self.directory / chrom.file).stat().st_size
            if size != chrom.length:
                raise InputFileError(f"{self.directory}: cached record '{name}' has {size:,} of its {chrom.length:,} "
                                     "bytes (damaged); run prepare again")
            self._maps[name] = np.memmap(self.directory / chrom.file, dtype=np.uint8, mode="r", shape=(chrom.length,))
        return self._maps[name]

    def release(self) -> None:
        """Unmap the arrays (they map again on the next read), so that the pages read so far stop counting in this
        process's resident memory: a pass over a whole genome stays as small as one over a megabase."""
        self._maps.clear()

    def window(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Packed bytes of [start, end): a zero-copy O(1) view; base code = `x & 0x7F`, soft mask = `x >> 7`."""
        length = self.chromosome(chrom).length
        if not 0 <= start <= end <= length:
            raise IndexError(f"window {chrom}:{start}-{end} is outside the record (length {length})")
        return self.array(chrom)[start:end]

    def bases(self, chrom: str, start: int, end: int) -> np.ndarray:
        """Base codes (A0 C1 G2 T3 N4) of [start, end)."""
        return self.window(chrom, start, end) & CODE_MASK

    def soft_mask(self, chrom: str, start: int, end: int) -> np.ndarray:
        """True where the FASTA had a lowercase (soft-masked) base in [start, end)."""
        return (self.window(chrom, start, end) & SOFT_MASK_BIT).astype(bool)

    def sequence(self, chrom: str, start: int, end: int) -> str:
        """Bases of [start, end) as text, lowercase kept (ambiguity codes read as N); for people and tests."""
        return _UNPACK_TABLE[self.window(chrom, start, end)].tobytes().decode("ascii")

    def n_count(self, chrom: str, starts: np.ndarray, length: int) -> np.ndarray:
        """Number of N in each window [s, s + length), from the N runs: vectorised, reads no bases."""
        runs = self.chromosome(chrom).n_runs
        return _n_before(runs, np.asarray(starts) + length) - _n_before(runs, np.asarray(starts))

    def verify(self) -> None:
        """Recompute every array's CRC-32 (reads everything); raises if the cache was damaged."""
        for name, chrom in self.chromosomes.items():
            if _crc32(self.array(name)) != chrom.crc32:
                raise InputFileError(f"{self.directory}: cached record '{name}' is damaged; delete the folder")

    def fasta(self) -> pyfaidx.Fasta:
        """pyfaidx access to the original text (IUPAC letters kept), with the index kept in this entry."""
        reader = self.source["reader"]
        kwargs = {"gzi_indexname": str(self.directory / reader["gzi"])} if reader.get("gzi") else {}
        text = self.directory / reader["text"] if reader["text"] == "source.fa" else reader["text"]
        return pyfaidx.Fasta(str(text), indexname=str(self.directory / reader["fai"]), **kwargs)


def _n_before(runs: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """How many N lie before each position (runs sorted, disjoint)."""
    if len(runs) == 0:
        return np.zeros(np.shape(positions), dtype=np.int64)
    before = np.concatenate([[0], np.cumsum(runs[:, 1] - runs[:, 0])])
    i = np.searchsorted(runs[:, 0], positions, side="right")      # runs starting at or before p
    last = np.maximum(i - 1, 0)
    partial = np.clip(positions - runs[last, 0], 0, runs[last, 1] - runs[last, 0])
    return before[last] + np.where(i > 0, partial, 0)


_UNPACK_TABLE = np.full(256, ord("?"), dtype=np.uint8)
_UNPACK_TABLE[:5] = np.frombuffer(b"ACGTN", dtype=np.uint8)
_UNPACK_TABLE[0x80:0x85] = np.frombuffer(b"acgtn", dtype=np.uint8)


def _chromosome_from_json(c: dict) -> Chromosome:
    runs = np.asarray(c["n_runs"], dtype=np.int64).reshape(-1, 2)
    return Chromosome(c["name"], c["length"], c["file"], runs, c["soft_masked"], c["crc32"])


def _some(names: list[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _crc32(array: np.ndarray) -> int:
    crc = 0
    for start in range(0, len(array), CHUNK_BASES):
        crc = zlib.crc32(array[start : start + CHUNK_BASES], crc)
    return crc


# preparing ------------------------------------------------------------------------------------------------


def prepare(
    fasta_path: str | os.PathLike, cache_dir: str | os.PathLike | None = None, progress: bool = False
) -> PreparedGenome:
    """The prepared genome of a FASTA, built on first use and rebuilt when the FASTA's content changes.

    Safe to call from several processes at once: one builds, the others wait and reuse its entry. Raises
    `InputFileError` (naming the file and the record or line) for anything that is not a clean FASTA of IUPAC
    nucleotides; nothing is left in the cache then.
    """
    path = Path(fasta_path)
    check_readable(path)
    entry = cache_entry(path, cache_dir)
    genome = _open_current(entry, path, may_hash=False)
    if genome is not None:
        return genome
    with contextlib.ExitStack() as locked:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            locked.enter_context(_entry_lock(entry))
        except PermissionError:
            return _open_read_only(entry, path)
        genome = _open_current(entry, path, may_hash=True)
        if genome is not None:
            return genome
        _remove_leftovers(entry)
        return _build_and_publish(path, entry, progress)


def _open_read_only(entry: Path, path: Path) -> PreparedGenome:
    """A shared cache this process cannot write: its entry serves when the FASTA's bytes are the ones it holds
    (hashed when the mtime differs); else one line, since nothing can be built there."""
    genome = _open_current(entry, path, may_hash=True)
    if genome is None:
        raise InputFileError(f"{entry.parent}: the cache is read-only and holds no current entry for {path}; prepare "
                             "it where the cache can be written, or give another cache folder")
    return genome


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, streamed (about 1 GB/s)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _open_current(entry: Path, path: Path, may_hash: bool) -> PreparedGenome | None:
    """The entry if it is complete and its source unchanged; None if absent, stale or damaged.

    The source's size and mtime as recorded mean unchanged; a different mtime means hashing the FASTA (`may_hash`,
    under the lock), and when the bytes are the same the new mtime is recorded so the next open is fast again.
    """
    index = _complete_index(entry)
    if index is None:
        return None
    source, stat = index["source"], path.stat()
    if stat.st_size != source["size"]:
        return None
    if stat.st_mtime_ns != source["mtime_ns"]:
        if not may_hash or file_sha256(path) != source["sha256"]:
            return None
        with contextlib.suppress(PermissionError):   # recording the new mtime only makes the next open faster
            _write_json(entry / "index.json", {**index, "source": {**source, "mtime_ns": stat.st_mtime_ns}})
    try:
        return PreparedGenome(entry)
    except InputFileError:  # replaced between the check and the open
        return None


def _complete_index(entry: Path) -> dict | None:
    """The entry's index if it has this format and every array has its length; None if absent or damaged."""
    try:
        index = json.loads((entry / "index.json").read_text())
        if index["version"] != FORMAT_VERSION or not {"size", "mtime_ns", "sha256"} <= index["source"].keys():
            return None
        if all((entry / c["file"]).stat().st_size == c["length"] for c in index["chromosomes"]):
            return index
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


@contextmanager
def _entry_lock(entry: Path) -> Iterator[None]:
    """Hold the entry's build lock. The lock file is removed on release, so a waiter that then holds the lock of a
    removed file tries again on a fresh one; no lock file outlives its holder."""
    lock_path = entry.with_name(f".{entry.name}.lock")
    while True:
        fd = os.open(lock_path, os.O_CREAT | os.O_RDWR, 0o644)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            if os.path.samestat(os.fstat(fd), os.stat(lock_path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        yield
    finally:
        os.unlink(lock_path)
        os.close(fd)


def _remove_leftovers(entry: Path) -> None:
    """Builds of this entry left by a killed process (under the lock no other builder of it runs)."""
    for folder in entry.parent.glob(f".build-{entry.name}-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _build_and_publish(path: Path, entry: Path, progress: bool) -> PreparedGenome:
    build = Path(tempfile.mkdtemp(prefix=f".build-{entry.name}-", dir=entry.parent))
    os.chmod(build, 0o755)
    try:
        _build(path, build, progress)
        _publish(build, entry)
    finally:
        shutil.rmtree(build, ignore_errors=True)
    return PreparedGenome(entry)


def _publish(build: Path, entry: Path) -> None:
    """Move a finished build into place (the caller holds the entry's lock), removing a stale entry."""
    stale = None
    if entry.exists():
        stale = build.with_name(build.name + "-stale")
        os.replace(entry, stale)
    os.replace(build, entry)
    if stale is not None:
        shutil.rmtree(stale, ignore_errors=True)


def _write_json(out: Path, value: dict) -> None:
    """Write a JSON file atomically: a reader sees the old or the new content, never a part."""
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(value))
    os.replace(tmp, out)


def _build(path: Path, build: Path, progress: bool) -> None:
    stat = path.stat()
    sha256 = file_sha256(path)
    fasta = open_fasta_text(path, build)
    records = fasta.records()
    if not records:
        raise InputFileError(f"{path}: no FASTA records (expected a line starting with '>')")
    for record in records:
        if record.length == 0:
            line = fasta.line_number(record)
            raise InputFileError(f"{path}: line {line}: record '{record.name}' has no sequence")
    chromosomes = []
    with tqdm(total=sum(r.length for r in records), unit="bp", unit_scale=True, disable=not progress,
              file=sys.stderr, desc=f"prepare {path.name}") as bar:
        for i, record in enumerate(records):
            chromosomes.append(_write_record(fasta, record, build / f"{i}.u8", bar))
    fasta.close()
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (stat.st_size, stat.st_mtime_ns):
        raise InputFileError(f"{path}: the file changed while it was being prepared; run prepare again")
    source = {"size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": sha256}
    _write_index(path, fasta, build, chromosomes, source)


def _write_record(fasta: FastaFile, record: Record, out: Path, bar: tqdm) -> dict:
    """Stream one record to its array file, chunk by chunk; returns its index entry."""
    runs, crc, soft = [], 0, 0
    with open(out, "wb") as handle:
        for start, text in fasta.chunks(record, CHUNK_BASES):
            packed = pack(text)
            _check_iupac(fasta, record, start, text, packed)
            runs.extend(_n_runs(packed, start))
            crc = zlib.crc32(packed, crc)
            soft += int(np.count_nonzero(packed & SOFT_MASK_BIT))
            handle.write(packed.tobytes())
            bar.update(len(packed))
    return {"name": record.name, "length": record.length, "file": out.name,
            "n_runs": _merge_runs(runs), "soft_masked": soft, "crc32": crc}


def _check_iupac(fasta: FastaFile, record: Record, start: int, text: str, packed: np.ndarray) -> None:
    if packed.size == 0 or packed.max() != INVALID:
        return
    offset = int(np.flatnonzero(packed == INVALID)[0])
    position = start + offset
    line = fasta.line_number(record, position)
    raise InputFileError(
        f"{fasta.display_path}: line {line}: record '{record.name}' position {position + 1}: "
        f"character {text[offset]!r} is not an IUPAC nucleotide code"
    )


def _n_runs(packed: np.ndarray, offset: int) -> list[list[int]]:
    """Half-open runs of N in a chunk, in record coordinates."""
    is_n = np.concatenate([[False], (packed & CODE_MASK) == N_CODE, [False]])
    edges = np.flatnonzero(is_n[1:] != is_n[:-1]) + offset
    return edges.reshape(-1, 2).tolist()


def _merge_runs(runs: list[list[int]]) -> list[list[int]]:
    """Join runs that a chunk boundary cut in two."""
    merged: list[list[int]] = []
    for start, end in runs:
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return merged


def _write_index(path: Path, fasta: FastaFile, build: Path, chromosomes: list[dict], source: dict) -> None:
    """Written last: a build folder with an index is complete."""
    text = "source.fa" if fasta.text_path.parent == build else str(path.resolve())
    reader = {"text": text, "fai": fasta.fai.name, "gzi": fasta.gzi.name if fasta.gzi else None}
    source = {"path": str(path.resolve()), **source, "reader": reader}
    index = {"version": FORMAT_VERSION, "source": source, "chromosomes": chromosomes}
    (build / "index.json").write_text(json.dumps(index))

