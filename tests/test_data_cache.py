"""The prepared cache: same bases as the FASTA, O(1) windows, rebuilt when the FASTA changes, never half written."""

from __future__ import annotations

import gzip
import multiprocessing
import os
import pickle
import threading
import time
import zlib

import numpy as np
import pytest
from Bio import SeqIO
from Bio.bgzf import BgzfWriter
from conftest import CHR20, DMEL, LAMBDA

from genomenet.data import cache as cache_module
from genomenet.data.cache import PreparedGenome, cache_entry, default_cache_dir, prepare
from genomenet.data.tokenizers import NucleotideTokenizer
from genomenet.errors import InputFileError


def biopython_records(path) -> dict[str, str]:
    """An independent reader as the reference: Biopython's parser."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt") as handle:
        return {r.id: str(r.seq) for r in SeqIO.parse(handle, "fasta")}


@pytest.mark.parametrize("path", [LAMBDA, DMEL, CHR20], ids=["gzip", "bgzip", "plain"])
def test_prepared_sequence_equals_the_fasta(path, cache_dir):
    genome = prepare(path, cache_dir)
    expected = biopython_records(path)
    assert genome.names == list(expected)
    for name, seq in expected.items():
        assert genome.sequence(name, 0, len(seq)) == seq


def test_random_windows_equal_pyfaidx_slices(dmel):
    fasta = dmel.fasta()
    name = dmel.names[0]
    for start in np.random.default_rng(1).integers(0, dmel.lengths[name] - 5000, size=10):
        start = int(start)
        assert dmel.sequence(name, start, start + 5000) == fasta[name][start : start + 5000].seq


def test_window_is_a_zero_copy_view_of_the_memmap(dmel):
    name = dmel.names[0]
    window = dmel.window(name, 1000, 2000)
    assert window.base is not None and np.shares_memory(window, dmel.array(name))


def test_soft_mask_and_n_runs_match_the_fasta(dmel):
    seq = next(iter(biopython_records(DMEL).values()))
    name = dmel.names[0]
    mask = dmel.soft_mask(name, 0, len(seq))
    np.testing.assert_array_equal(mask, np.frombuffer(seq.encode(), np.uint8) >= ord("a"))
    n_positions = np.flatnonzero(np.frombuffer(seq.upper().encode(), np.uint8) == ord("N"))
    runs = dmel.chromosome(name).n_runs
    assert runs.tolist() == [[int(n_positions[0]), int(n_positions[-1]) + 1]] and len(n_positions) == 17_000
    assert dmel.chromosome(name).soft_masked == int(mask.sum())


def test_n_count_from_runs_equals_counting_bases(dmel):
    name = dmel.names[0]
    starts = np.random.default_rng(2).integers(90_000, 120_000, size=50)
    counts = dmel.n_count(name, starts, 4096)
    direct = [np.count_nonzero(dmel.bases(name, s, s + 4096) == 4) for s in starts]
    np.testing.assert_array_equal(counts, direct)


def test_runs_cut_by_chunk_boundaries_are_joined(write_fasta, cache_dir, monkeypatch):
    monkeypatch.setattr("genomenet.data.cache.CHUNK_BASES", 7)
    genome = prepare(write_fasta(b">a\nACGNNNNNNNNNNNNTA\n"), cache_dir)
    assert genome.chromosome("a").n_runs.tolist() == [[3, 15]]
    assert genome.sequence("a", 0, 17) == "ACGNNNNNNNNNNNNTA"


def test_multi_record_file_keeps_records_apart(write_fasta, cache_dir):
    genome = prepare(write_fasta(b">one desc\nACGT\nAC\n>two\nggNN\n>three\nT\n"), cache_dir)
    assert genome.lengths == {"one": 6, "two": 4, "three": 1}
    assert genome.sequence("two", 0, 4) == "ggNN" and genome.sequence("three", 0, 1) == "T"


def test_windows_line_endings_are_accepted(write_fasta, cache_dir):
    genome = prepare(write_fasta(b">a\r\nACGT\r\nAC\r\n>b\r\nGG\r\n"), cache_dir)
    assert genome.sequence("a", 0, 6) == "ACGTAC" and genome.sequence("b", 0, 2) == "GG"


def test_second_prepare_reuses_the_cache(write_fasta, cache_dir):
    path = write_fasta(b">a\nACGT\n")
    first = prepare(path, cache_dir)
    mtime = (first.directory / "index.json").stat().st_mtime_ns
    assert prepare(path, cache_dir).directory == first.directory
    assert (first.directory / "index.json").stat().st_mtime_ns == mtime


def test_cache_is_rebuilt_when_the_fasta_changes(write_fasta, cache_dir):
    path = write_fasta(b">a\nACGT\n")
    prepare(path, cache_dir)
    path.write_bytes(b">a\nTTTTGG\n")
    os.utime(path, ns=(1, 1))  # even with an old mtime: size and content hash changed
    genome = prepare(path, cache_dir)
    assert genome.sequence("a", 0, 6) == "TTTTGG"


def test_failed_prepare_leaves_no_cache_behind(write_fasta, cache_dir):
    path = write_fasta(b">a\nACGT\n>b\nAC!T\n")
    with pytest.raises(ValueError):
        prepare(path, cache_dir)
    assert list(cache_dir.iterdir()) == []


def test_failed_rebuild_keeps_no_stale_entry_used(write_fasta, cache_dir):
    path = write_fasta(b">a\nACGT\n")
    prepare(path, cache_dir)
    path.write_bytes(b">a\nAC!T\n")
    with pytest.raises(ValueError):
        prepare(path, cache_dir)
    assert [p.name for p in cache_dir.iterdir()] == [cache_entry(path, cache_dir).name]
    path.write_bytes(b">a\nGGGG\n")
    assert prepare(path, cache_dir).sequence("a", 0, 4) == "GGGG"


def test_prepare_reads_fasta_from_a_read_only_folder(write_fasta, cache_dir):
    path = write_fasta(b">a\nACGTN\n")
    os.chmod(path.parent, 0o555)
    try:
        assert prepare(path, cache_dir).sequence("a", 0, 5) == "ACGTN"
    finally:
        os.chmod(path.parent, 0o755)
    assert not (path.parent / "genome.fa.fai").exists()


def test_a_read_only_cache_serves_an_entry_whose_fasta_was_only_touched(write_fasta, cache_dir, monkeypatch):
    """A shared cache others prepared: a new mtime on the same bytes used to fail on taking the build lock."""
    path = write_fasta(b">a\nACGT\n")
    prepare(path, cache_dir)
    os.utime(path, ns=(10**18, 10**18))

    def read_only(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(cache_dir))

    monkeypatch.setattr(cache_module, "_entry_lock", read_only)
    monkeypatch.setattr(cache_module, "_write_json", read_only)
    assert prepare(path, cache_dir).sequence("a", 0, 4) == "ACGT"
    path.write_bytes(b">a\nGGGG\n")   # new bytes: nothing can be rebuilt there, one line says so
    with pytest.raises(InputFileError, match="the cache is read-only and holds no current entry"):
        prepare(path, cache_dir)


def test_bgzip_and_plain_gzip_give_the_same_cache(tmp_path, cache_dir):
    text = b">x\nACGTNNacgt\nAC\n"
    with BgzfWriter(str(tmp_path / "x.bgz.fa.gz"), "wb") as out:
        out.write(text)
    (tmp_path / "x.gz.fa.gz").write_bytes(gzip.compress(text))
    a, b = prepare(tmp_path / "x.bgz.fa.gz", cache_dir), prepare(tmp_path / "x.gz.fa.gz", cache_dir)
    np.testing.assert_array_equal(a.window("x", 0, 12), b.window("x", 0, 12))


def test_cache_dir_defaults_to_env_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("GENOMENET_CACHE", str(tmp_path / "envcache"))
    assert default_cache_dir() == tmp_path / "envcache"
    monkeypatch.delenv("GENOMENET_CACHE")
    assert str(default_cache_dir()).endswith(os.path.join(".cache", "genomenet"))


def test_prepared_genome_pickles_as_its_folder_and_reopens(dmel):
    name = dmel.names[0]
    dmel.window(name, 0, 10)  # open a memmap first
    blob = pickle.dumps(dmel)
    assert len(blob) < 1000
    np.testing.assert_array_equal(pickle.loads(blob).window(name, 500, 600), dmel.window(name, 500, 600))


def test_verify_detects_a_damaged_array(write_fasta, cache_dir):
    genome = prepare(write_fasta(b">a\nACGTACGT\n"), cache_dir)
    genome.verify()
    with open(genome.directory / "0.u8", "r+b") as handle:
        handle.write(b"\x03")
    with pytest.raises(ValueError, match="damaged"):
        PreparedGenome(genome.directory).verify()


def test_window_outside_the_record_is_refused(lambda_phage):
    with pytest.raises(IndexError, match="outside"):
        lambda_phage.window(lambda_phage.names[0], 48_000, 49_000)


def test_cache_window_tokenizes_like_the_text(dmel):
    tok = NucleotideTokenizer()
    name = dmel.names[0]
    np.testing.assert_array_equal(
        tok.encode_packed(dmel.window(name, 0, 3000).copy()), tok.encode(dmel.sequence(name, 0, 3000))
    )


# content, damage and concurrency ----------------------------------------------------------------------------


def random_fasta(rng: np.random.Generator, length: int) -> bytes:
    return b">r\n" + rng.choice(np.frombuffer(b"ACGTacgtN", np.uint8), size=length).tobytes() + b"\n"


def entry_names(cache_dir) -> list[str]:
    """Everything in the cache folder, hidden names (locks, builds) included."""
    return sorted(p.name for p in cache_dir.iterdir())


def test_changing_the_fasta_content_at_the_same_size_rebuilds(write_fasta, cache_dir):
    rng = np.random.default_rng(11)
    data = random_fasta(rng, 5000)
    path = write_fasta(data)
    prepare(path, cache_dir)
    position = 3 + int(rng.integers(0, 5000))
    changed = data[:position] + (b"A" if data[position:position + 1] != b"A" else b"C") + data[position + 1:]
    path.write_bytes(changed)
    os.utime(path, ns=(2_000_000_000, 2_000_000_000))  # a different mtime, same size: only the hash tells
    genome = prepare(path, cache_dir)
    assert genome.sequence("r", 0, 5000) == changed[3:-1].decode()
    assert entry_names(cache_dir) == [cache_entry(path, cache_dir).name]


def test_touching_or_rewriting_the_fasta_with_the_same_bytes_keeps_the_cache(write_fasta, cache_dir, monkeypatch):
    data = random_fasta(np.random.default_rng(12), 3000)
    path = write_fasta(data)
    first = prepare(path, cache_dir)
    array_inode = (first.directory / "0.u8").stat().st_ino
    monkeypatch.setattr(cache_module, "_build", lambda *a: pytest.fail("rebuilt a FASTA whose bytes did not change"))
    path.write_bytes(data)
    os.utime(path, ns=(3_000_000_000, 3_000_000_000))
    assert prepare(path, cache_dir).sequence("r", 0, 3000) == data[3:-1].decode()
    assert (first.directory / "0.u8").stat().st_ino == array_inode
    hashed = []
    monkeypatch.setattr(cache_module, "file_sha256", lambda p: hashed.append(p))
    prepare(path, cache_dir)  # the new mtime was recorded: trusted again without reading the FASTA
    assert hashed == []


def test_truncated_array_is_detected_and_rebuilt(write_fasta, cache_dir):
    data = random_fasta(np.random.default_rng(13), 4000)
    genome = prepare(write_fasta(data), cache_dir)
    with open(genome.directory / "0.u8", "r+b") as handle:
        handle.truncate(1234)
    with pytest.raises(InputFileError, match="damaged"):
        PreparedGenome(genome.directory).window("r", 0, 10)
    rebuilt = prepare(genome.source["path"], cache_dir)
    assert rebuilt.sequence("r", 0, 4000) == data[3:-1].decode()
    rebuilt.verify()


@pytest.mark.parametrize("index_text", ["{\"version\": 2, \"sour", "[]", ""], ids=["cut", "wrong_shape", "empty"])
def test_damaged_index_is_one_line_for_readers_and_rebuilt_by_prepare(index_text, write_fasta, cache_dir):
    path = write_fasta(b">a\nACGTN\n")
    directory = prepare(path, cache_dir).directory
    (directory / "index.json").write_text(index_text)
    with pytest.raises(InputFileError, match="damaged cache entry") as err:
        PreparedGenome(directory)
    assert "\n" not in str(err.value)
    assert prepare(path, cache_dir).sequence("a", 0, 5) == "ACGTN"


def test_leftover_build_of_a_killed_process_is_removed_and_no_lock_file_stays(write_fasta, cache_dir):
    path = write_fasta(b">a\nACGT\n")
    entry = cache_entry(path, cache_dir)
    (cache_dir / f".build-{entry.name}-killed").mkdir(parents=True)
    prepare(path, cache_dir)
    assert entry_names(cache_dir) == [entry.name]


def _prepare_in_child(fasta: str, cache: str, log: str, barrier, results) -> None:
    """Spawned: prepare after the barrier; every build is logged and held open a while, to make the race real."""
    build = cache_module._build

    def logged_build(path, folder, progress):
        with open(log, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        time.sleep(0.5)
        build(path, folder, progress)

    cache_module._build = logged_build
    barrier.wait()
    genome = prepare(fasta, cache)
    results.put((str(genome.directory), {name: zlib.crc32(genome.array(name)) for name in genome.names}))


def test_two_processes_preparing_one_fasta_both_succeed_with_one_build_and_one_entry(tmp_path, cache_dir):
    ctx = multiprocessing.get_context("spawn")
    barrier, results, log = ctx.Barrier(2), ctx.Queue(), tmp_path / "builds.log"
    procs = [ctx.Process(target=_prepare_in_child, args=(str(DMEL), str(cache_dir), str(log), barrier, results))
             for _ in range(2)]
    for proc in procs:
        proc.start()
    got = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
        assert proc.exitcode == 0
    assert got[0] == got[1]
    assert len(log.read_text().split()) == 1
    assert entry_names(cache_dir) == [cache_entry(DMEL, cache_dir).name]
    genome = prepare(DMEL, cache_dir)
    assert {name: zlib.crc32(genome.array(name)) for name in genome.names} == got[0][1]
    assert genome.sequence(genome.names[0], 0, genome.lengths[genome.names[0]]) == next(
        iter(biopython_records(DMEL).values()))


def test_a_reader_polling_while_another_process_publishes_never_sees_a_partial_entry(tmp_path, cache_dir):
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    writer = ctx.Process(target=_prepare_in_child, args=(str(DMEL), str(cache_dir), str(tmp_path / "log"), barrier,
                                                         results))
    writer.start()
    entry, seen, deadline = cache_entry(DMEL, cache_dir), [], time.monotonic() + 120
    barrier.wait()
    while time.monotonic() < deadline:
        alive = writer.is_alive()
        if not entry.exists():
            seen.append("absent")
            if not alive:
                break
            continue
        genome = PreparedGenome(entry)  # raises if the folder is there without its index
        genome.verify()  # raises if an array is short or differs from its recorded CRC
        seen.append("complete")
        if not alive:
            break
    writer.join(timeout=60)
    assert writer.exitcode == 0 and seen[0] == "absent" and seen[-1] == "complete"


def test_threads_preparing_while_others_read_all_get_the_same_genome(write_fasta, cache_dir):
    data = random_fasta(np.random.default_rng(14), 20_000)
    path, results, errors = write_fasta(data), [], []

    def run():
        try:
            results.append(prepare(path, cache_dir).sequence("r", 0, 20_000))
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [data[3:-1].decode()] * 4
    assert entry_names(cache_dir) == [cache_entry(path, cache_dir).name]


def test_cli_prepare_subcommand_prints_where_the_cache_is(cache_dir, capsys):
    from genomenet.cli import main

    assert main(["prepare", str(LAMBDA), "--cache-dir", str(cache_dir)]) == 0
    assert str(cache_entry(LAMBDA, cache_dir)) in capsys.readouterr().out
