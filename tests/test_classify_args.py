"""`genomenet classify`: bad arguments are one line before any scoring; multi-label predictions name every class
the model gives 0.5 or more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DMEL

from genomenet.cli import main
from genomenet.data.tokenizers import make_tokenizer
from genomenet.downstream.regions import prediction
from genomenet.model.classifier import ClassifierInfo, export_classifier
from genomenet.model.heads import RegionClassifierNet
from genomenet.model.longnet import LongNet, LongNetConfig


@pytest.mark.parametrize(("extra", "said"), [
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/p.tsv", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--out", "{tmp}/p.tsv", "--device", "tpu:x"], "--device tpu:x: not a device"),
    (["--out", "{tmp}/p.bed.gz"], "give a name ending in .tsv (class probabilities) or .bed"),  # was a plain TSV
    (["--out", "{tmp}/p.tsv.gz"], "give a name ending in .tsv (class probabilities) or .bed"),  # was not gzip
])
def test_bad_arguments_are_one_line_and_nothing_is_written(tmp_path: Path, capfd, extra: list[str],
                                                           said: str) -> None:
    bed = tmp_path / "r.bed"
    bed.write_text("chr4\t100\t200\ta\t0\t+\n")
    argv = ["classify", "--model", str(tmp_path / "no_model"), "--fasta", str(DMEL), "--regions", str(bed),
            *(a.format(tmp=tmp_path) for a in extra)]
    assert main(argv) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bed"]


def test_multilabel_predictions_name_every_class_at_half_or_more() -> None:
    classes = ["exon", "repeat", "tss"]
    assert prediction("multilabel", classes, np.array([0.9, 0.2, 0.6])) == ("exon,tss", pytest.approx(0.6))
    assert prediction("multilabel", classes, np.array([0.1, 0.3, 0.2])) == (".", pytest.approx(0.7))
    assert prediction("multiclass", classes, np.array([0.2, 0.5, 0.3])) == ("repeat", 0.5)


def test_a_region_in_an_n_run_gets_its_row_and_a_warning_naming_it(tmp_path: Path, capfd) -> None:
    tokenizer = make_tokenizer(1)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=16, n_heads=2, segment_lengths=[32, 64],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=False), 1, "mean", tokenizer.pad_id)  # binary: one logit
    info = ClassifierInfo(cfg, False, 1, "mean", {"kind": "binary", "classes": ["no", "yes"]},
                          {"length": 64, "mode": "centered", "flank": 0})
    model = export_classifier(net, info, tmp_path / "model")
    bed = tmp_path / "r.bed"   # the slice's N run is [100662, 117662)
    chrom = "NC_004353.4:1100001-1300000"
    bed.write_text(f"{chrom}\t5000\t5001\tx\t0\t+\n{chrom}\t110000\t110001\ty\t0\t-\n")
    out = tmp_path / "p.tsv"
    assert main(["classify", "--model", str(model), "--fasta", str(DMEL), "--regions", str(bed), "--out", str(out),
                 "--cache-dir", str(tmp_path / "cache"), "--quiet"]) == 0
    err = capfd.readouterr().err
    assert f"1 of 2 regions read windows more than half N (first: {chrom}:110000-110001)" in err
    assert len(out.read_text().splitlines()) == 3   # the header and both regions


def test_regions_are_scored_a_chunk_at_a_time_with_the_same_rows(tmp_path: Path, monkeypatch) -> None:
    """A genome-wide BED is not tokenized all at once: chunks of a few windows give the same file as one chunk."""
    import genomenet.downstream.regions as regions

    tokenizer = make_tokenizer(1)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=16, n_heads=2, segment_lengths=[32, 64],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=False), 3, "mean", tokenizer.pad_id)
    info = ClassifierInfo(cfg, False, 1, "mean", {"kind": "multiclass", "classes": ["a", "b", "c"]},
                          {"length": 64, "mode": "centered", "flank": 0})
    model = export_classifier(net, info, tmp_path / "model")
    chrom = "NC_004353.4:1100001-1300000"
    bed = tmp_path / "r.bed"
    bed.write_text("".join(f"{chrom}\t{s}\t{s + 10}\tr{s}\t0\t{'+-'[s % 2]}\n" for s in range(1000, 1023)))
    args = ["classify", "--model", str(model), "--fasta", str(DMEL), "--regions", str(bed), "--cache-dir",
            str(tmp_path / "cache"), "--quiet", "--batch-size", "2"]
    assert main([*args, "--out", str(tmp_path / "whole.tsv")]) == 0
    monkeypatch.setattr(regions, "CLASSIFY_CHUNK_TOKENS", 3 * 64)   # 3 windows a chunk: 8 chunks, the last short
    built = []
    original = regions.region_frames
    monkeypatch.setattr(regions, "region_frames", lambda *a: built.append(1) or original(*a))
    chunks = []
    original_outputs = regions.window_outputs
    monkeypatch.setattr(regions, "window_outputs", lambda net, tokens, *a: chunks.append(len(tokens))
                        or original_outputs(net, tokens, *a))
    assert main([*args, "--out", str(tmp_path / "chunked.tsv")]) == 0
    assert chunks == [3] * 7 + [2] and len(built) == 23
    assert (tmp_path / "chunked.tsv").read_text() == (tmp_path / "whole.tsv").read_text()
    assert len((tmp_path / "whole.tsv").read_text().splitlines()) == 24
