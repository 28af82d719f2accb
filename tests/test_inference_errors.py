"""Bad input to `genomenet embed` / `track`: one line on stderr naming the file and record, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import CHR20
from inference_models import tiny_model

from genomenet.cli import main

CHR20_NAME = "20:59001-159000"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return tiny_model(tmp_path_factory.mktemp("model") / "m", "causal", 1, window=128)


def run(capsys, command: str, model: Path, fasta: Path, out: Path, *extra: str) -> str:
    code = main([command, "--model", str(model), "--fasta", str(fasta), "--out", str(out), "--quiet", *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("genomenet: error: "), err
    assert not list(out.parent.glob(f"{out.name}*")), "something was written"
    return err


@pytest.mark.parametrize("command,suffix", [("embed", ".h5"), ("track", ".bedGraph")])
@pytest.mark.parametrize("bed_line,expected", [
    ("chr20:59001-159000\t10\t100\n", "line 1: chromosome 'chr20:59001-159000' is not in the FASTA (the BED has a "
     "'chr' prefix that the FASTA lacks"),
    ("20:59001-159000\t10\t100\n20:59001-159000\t99000\t100100\n", "line 2: interval 20:59001-159000:99000-100100 "
     "is outside its chromosome (length 100000)"),
    ("chrX\t10\t100\n", "line 1: chromosome 'chrX' is not in the FASTA (the FASTA has 20:59001-159000)"),
    ("20:59001-159000\t10\n", "line 1: expected tab-separated 'chrom start end'"),
    ("20:59001-159000\t10\t100\tname\t0\t*\n", "line 1: strand (column 6) must be '+', '-' or '.'"),
])
def test_bad_bed_is_one_line_naming_file_and_line(tmp_path, capsys, model_dir, command, suffix, bed_line,
                                                  expected) -> None:
    bed = tmp_path / "bad.bed"
    bed.write_text(bed_line)
    err = run(capsys, command, model_dir, CHR20, tmp_path / f"out{suffix}", "--regions", str(bed),
              "--cache-dir", str(tmp_path / "c"))
    assert f"{bed}: {expected}" in err


def test_a_path_that_is_not_a_model_is_refused(tmp_path, capsys) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "text.ckpt").write_text("hello\n")
    for path, expected in [(tmp_path / "empty", "not an exported model directory"),
                           (tmp_path / "text.ckpt", "not a genomenet checkpoint"),
                           (tmp_path / "missing", "no such model directory or checkpoint file")]:
        assert f"{path}: {expected}" in run(capsys, "embed", path, CHR20, tmp_path / "o.h5")


def test_a_fasta_the_tokenizer_cannot_read_is_refused(tmp_path, capsys, model_dir) -> None:
    protein = tmp_path / "protein.fa"
    protein.write_text(">sp|P69905|HBA_HUMAN\nMVLSPADKTNVKAAWGKVGAHAGEYGAEALERMFLSFPTTKTYFPHF\n")
    err = run(capsys, "embed", model_dir, protein, tmp_path / "o.h5", "--cache-dir", str(tmp_path / "c"))
    assert f"{protein}: line 2: record 'sp|P69905|HBA_HUMAN' position 3: character 'L'" in err


def test_options_that_cannot_work_are_refused_before_any_work(tmp_path, capsys, model_dir) -> None:
    assert "--context 128 leaves no room in a --window of 128 bases" in run(
        capsys, "embed", model_dir, CHR20, tmp_path / "o.h5", "--context", "128")
    assert "--layer 7: this model has layers 0..2" in run(capsys, "embed", model_dir, CHR20, tmp_path / "o.h5",
                                                          "--layer", "7")
    assert "give an HDF5 file name" in run(capsys, "embed", model_dir, CHR20, tmp_path / "o.txt")
    assert "give a .bedGraph" in run(capsys, "track", model_dir, CHR20, tmp_path / "o.txt")
    assert "folder" in run(capsys, "embed", model_dir, CHR20, tmp_path / "no" / "o.h5")
