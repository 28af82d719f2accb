"""Bad input: one clear line naming the file and the record or line, exit code 2, no traceback, no cache left."""

from __future__ import annotations

import gzip

import pytest
from conftest import DMEL, LAMBDA

from genomenet.cli import prepare_main
from genomenet.data.cache import prepare
from genomenet.data.datamodule import GenomeDataModule
from genomenet.data.intervals import read_bed
from genomenet.errors import ConfigError, InputFileError

BAD_FASTA = {
    "not_fasta": (b"hello world\nthis is text\n", r"line 1"),
    "empty": (b"", r"empty file"),
    "record_without_sequence": (b">a\nACGT\n>b\n>c\nGG\n", r"line 3: record 'b' has no sequence"),
    "last_header_without_a_newline": (b">a\nACGT\n>b", r"line 3: record 'b' has no sequence"),
    "header_without_a_name": (b">a\nACGT\n>\nACGT\n", r"line 3: header '>' has no record name"),
    "duplicate_record_names": (b">a\nACGT\n>a\nACGT\n", r"duplicate record name 'a'"),
    "characters_outside_iupac": (b">a\nACGT\n>b\nACGT\nAC!T\n", r"line 5: record 'b' position 7: character '!'"),
    "inconsistent_line_lengths": (b">a\nACGT\nA\nACGT\n", r"line 3"),
    "blank_lines_between_records": (b">a\nACGT\n\n\n>b\nACGT\n", r"line 3: record 'a': blank line in the sequence"),
    "blank_lines_after_a_short_last_line": (b">a\nACGT\nAC\n\n\n", r"line 4: record 'a': blank line in the sequence"),
    "bzip2": (b"BZh91AY&SY" + bytes(20), r"a bzip2 file; FASTA is read as plain text, gzip or bgzip"),
    "zstd": (b"\x28\xb5\x2f\xfd" + bytes(20), r"a zstd file"),
    "byte_order_mark": (b"\xef\xbb\xbf>a\nACGT\n", r"starts with a UTF-8 byte-order mark"),  # was 'text before'
}


@pytest.mark.parametrize("case", BAD_FASTA, ids=list(BAD_FASTA))
def test_prepare_rejects_bad_fasta_naming_file_and_line(case, write_fasta, cache_dir):
    data, message = BAD_FASTA[case]
    path = write_fasta(data, f"{case}.fa")
    with pytest.raises(InputFileError, match=message) as err:
        prepare(path, cache_dir)
    assert str(err.value).startswith(str(path)) and "\n" not in str(err.value)
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []


@pytest.mark.parametrize("case", BAD_FASTA, ids=list(BAD_FASTA))
def test_prepare_main_prints_one_line_and_exits_2(case, write_fasta, cache_dir, capsys):
    path = write_fasta(BAD_FASTA[case][0], f"{case}.fa")
    assert prepare_main([str(path), "--cache-dir", str(cache_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith(f"genomenet: error: {path}") and "Traceback" not in capsys.readouterr().err


def test_prepare_rejects_duplicate_record_names(write_fasta, cache_dir):
    with pytest.raises(InputFileError, match="duplicate record name 'chr1'"):
        prepare(write_fasta(b">chr1\nAC\n>chr2\nGG\n>chr1 again\nTT\n"), cache_dir)


def test_prepare_rejects_truncated_gzip(tmp_path, cache_dir):
    blob = LAMBDA.read_bytes()
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputFileError, match=r"cut\.fa\.gz: truncated or corrupt gzip"):
        prepare(path, cache_dir)
    assert list(cache_dir.iterdir()) == []


def test_prepare_rejects_truncated_bgzip(tmp_path, cache_dir):
    blob = DMEL.read_bytes()
    path = tmp_path / "cut.fa.gz"
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(InputFileError, match=r"cut\.fa\.gz"):
        prepare(path, cache_dir)
    assert list(cache_dir.iterdir()) == []


def test_prepare_rejects_a_missing_file(tmp_path, cache_dir):
    with pytest.raises(InputFileError, match="no such FASTA file"):
        prepare(tmp_path / "absent.fa", cache_dir)


def test_prepare_rejects_a_folder_given_as_the_fasta(tmp_path, cache_dir):
    with pytest.raises(InputFileError, match="a folder, not a FASTA file"):
        prepare(tmp_path, cache_dir)


def test_prepare_rejects_gzip_of_empty_text(tmp_path, cache_dir):
    path = tmp_path / "nothing.fa.gz"
    path.write_bytes(gzip.compress(b""))
    with pytest.raises(InputFileError, match="nothing.fa.gz: empty"):
        prepare(path, cache_dir)


def test_prepare_main_succeeds_and_says_where_the_cache_is(cache_dir, capsys):
    assert prepare_main([str(LAMBDA), "--cache-dir", str(cache_dir)]) == 0
    out = capsys.readouterr().out
    assert "48,502 bp" in out and str(cache_dir) in out


def test_bed_interval_outside_its_chromosome_is_an_error_naming_the_line(tmp_path):
    bed = tmp_path / "held.bed"
    bed.write_text("# held out\nchr1\t0\t100\nchr1\t900\t1200\n")
    with pytest.raises(InputFileError, match=r"held\.bed: line 3: interval chr1:900-1200 is outside"):
        read_bed(bed, {"chr1": 1000})


@pytest.mark.parametrize(
    "line, message",
    [("chr1\t10\n", "expected tab-separated"), ("chr1\tten\t20\n", "integers"), ("chr1\t20\t10\n", "start < end"),
     ("chrZ\t1\t2\n", "'chrZ' is not in the FASTA")],
)
def test_malformed_bed_lines_are_errors_naming_the_line(tmp_path, line, message):
    bed = tmp_path / "bad.bed"
    bed.write_text("chr1\t1\t2\n" + line)
    with pytest.raises(InputFileError, match=rf"bad\.bed: line 2: .*{message}"):
        read_bed(bed, {"chr1": 1000})


def test_unknown_chromosome_in_a_split_is_an_error_naming_it(cache_dir):
    dm = GenomeDataModule(str(LAMBDA), context_length=100, val_chromosomes=["chrX"], cache_dir=str(cache_dir))
    with pytest.raises(ConfigError, match=r"val_chromosomes: chromosome 'chrX' is not in .*lambda_phage"):
        dm.setup("fit")


def test_bed_held_out_interval_outside_the_genome_fails_setup(tmp_path, cache_dir):
    bed = tmp_path / "val.bed"
    name = "gi|9626243|ref|NC_001416.1|"
    bed.write_text(f"{name}\t40000\t50000\n")
    dm = GenomeDataModule(str(LAMBDA), context_length=100, val_intervals=str(bed), cache_dir=str(cache_dir))
    with pytest.raises(InputFileError, match="val.bed: line 1: .*outside its chromosome"):
        dm.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "said"),
    [
        ({"num_workers": -1}, "data.num_workers=-1 must be >= 0"),
        ({"samples_per_epoch": 0}, "data.samples_per_epoch=0 must be >= 1"),
        ({"samples_per_epoch": -3}, "data.samples_per_epoch=-3 must be >= 1"),
        ({"val_samples": 0}, "data.val_samples=0 must be >= 1"),
        ({"tokenizer": "kmer", "kmer_size": 3, "context_length": 130},   # silently dropped a base of every window
         "data.context_length=130 is not a whole number of k-mer tokens .* the last 1 base.* use 129 or 132"),
        ({"tokenizer": "kmer", "kmer_size": 6, "context_length": 4}, "use 6 or 12"),
    ],
)
def test_impossible_loader_numbers_are_config_errors_naming_the_option(kwargs, said):
    with pytest.raises(ConfigError, match=said):
        GenomeDataModule("genome.fa", **kwargs)


def test_prepare_names_a_byte_order_mark_inside_gzip(tmp_path, cache_dir):
    path = tmp_path / "bom.fa.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf>a\nACGT\n"))
    with pytest.raises(InputFileError, match="bom.fa.gz: starts with a UTF-8 byte-order mark"):
        prepare(path, cache_dir)
