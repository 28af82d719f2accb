"""The prepared cache: same bases as the FASTA, O(1) windows, rebuilt when the FASTA changes, never half written."""

from __future__ import annotations

import gzip
import os
import pickle

import numpy as np
import pytest
from Bio import SeqIO
from Bio.bgzf import BgzfWriter
from conftest import CHR20, DMEL, LAMBDA

from genomenet.data.cache import PreparedGenome, cache_entry, default_cache_dir, prepare
from genomenet.data.tokenizers import NucleotideTokenizer


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
