"""`genomenet fit --config configs/finetune_variants.yaml`: a supervised head on (ref, alt, alt - ref) embeddings
learns a label planted in the alleles, and its report ends with the contract lines."""

from __future__ import annotations

import gzip
import random
import re
from pathlib import Path

import pytest
import torch
from conftest import DMEL
from inference_models import tiny_model

from genomenet.cli import main

CHROM = "NC_004353.4:1100001-1300000"


@pytest.mark.slow
def test_the_head_learns_a_label_carried_by_the_alternative_base(tmp_path: Path, capsys) -> None:
    with gzip.open(DMEL, "rt") as handle:
        handle.readline()
        text = "".join(line.strip() for line in handle).upper()
    rng = random.Random(0)
    rows, labels = [], ["chrom\tpos\tref\talt\tlabel"]
    for start0 in sorted(rng.sample(range(2_000, 198_000), 400)):
        ref = text[start0]
        if ref not in "ACGT":
            continue
        alt = rng.choice([b for b in "ACGT" if b != ref])
        rows.append(f"{CHROM}\t{start0 + 1}\t.\t{ref}\t{alt}\t.\tPASS\t.")
        labels.append(f"{CHROM}\t{start0 + 1}\t{ref}\t{alt}\t{int(alt in 'CG')}")
    vcf = tmp_path / "v.vcf"
    vcf.write_text("##fileformat=VCFv4.2\n" + f"##contig=<ID={CHROM},length=200000>\n"
                   + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "\n".join(rows) + "\n")
    (tmp_path / "labels.tsv").write_text("\n".join(labels) + "\n")
    model = tiny_model(tmp_path / "backbone", seed=0)
    argv = ["fit", "--config", str(Path(__file__).parents[1] / "configs" / "finetune_variants.yaml"),
            "--data.fasta", str(DMEL), "--data.vcf", str(vcf), "--data.labels", str(tmp_path / "labels.tsv"),
            "--data.context_length", "64", "--data.split.block_size", "20000", "--data.markov_max_order", "3",
            "--data.cache_dir", str(tmp_path / "cache"), "--model.init_weights", str(model),
            "--trainer.max_epochs", "15", "--trainer.accelerator", "cpu", "--trainer.logger", "false",
            "--trainer.enable_progress_bar", "false", "--checkpoint.dirpath", str(tmp_path / "run" / "checkpoints"),
            "--report.export_dir", str(tmp_path / "run" / "model"), "--model.optimizer.lr", "0.003"]
    assert main(argv) == 0
    out = capsys.readouterr().out.strip().splitlines()
    auroc = re.fullmatch(r"held-out AUROC: (\d\.\d{3}) \(Markov baseline: (\d\.\d{3})\)", out[-2])
    assert auroc, out[-2]
    assert float(auroc.group(1)) >= 0.8
    assert out[-1] == f"model: {tmp_path / 'run' / 'model'}"
    assert any(line.startswith("| Markov LLR") for line in out)
    assert (tmp_path / "run" / "model" / "model.safetensors").is_file()
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"   # resumed: the settings are read back from it
    steps = torch.load(last, weights_only=False)["global_step"]
    assert main([*argv, "--trainer.max_epochs", "16", "--ckpt_path", str(last)]) == 0
    assert torch.load(last, weights_only=False)["global_step"] > steps


@pytest.mark.parametrize(("row", "says"), [
    ("20\tabc\tA\tG\t1", "line 3: pos must be a 1-based position, got 'abc'"),
    ("20\t\tA\tG\t1", "line 3: pos must be a 1-based position, got ''"),
    ("20\t10\tA\tG\t0", "line 3: 20:10 A>G is labelled 0 here and 1 on line 2"),
])
def test_a_bad_or_contradicting_labels_row_is_one_error_naming_its_line(tmp_path: Path, row: str, says: str) -> None:
    from genomenet.data.variants import read_label_tsv
    from genomenet.errors import InputFileError

    path = tmp_path / "labels.tsv"
    path.write_text(f"chrom\tpos\tref\talt\tlabel\n20\t10\tA\tG\t1\n{row}\n")
    with pytest.raises(InputFileError, match=re.escape(f"{path}: {says}")):
        read_label_tsv(path)


def test_a_repeated_labels_row_that_agrees_is_accepted(tmp_path: Path) -> None:
    from genomenet.data.variants import read_label_tsv

    path = tmp_path / "labels.tsv"
    path.write_text("chrom\tpos\tref\talt\tlabel\n20\t10\tA\tG\t1\n20\t10\ta\tg\t1\n")
    assert read_label_tsv(path) == {("20", 10, "A", "G"): 1}


def _variants_and_labels(tmp_path: Path, vcf_chrom: str, label_chrom: str) -> tuple[Path, Path, Path]:
    rng = random.Random(1)
    text = "".join(rng.choice("ACGT") for _ in range(60_000))
    (tmp_path / "g.fa").write_text(f">20\n{text}\n")
    rows, labels = [], ["chrom\tpos\tref\talt\tlabel"]
    for start0 in sorted(rng.sample(range(1_000, 59_000), 200)):
        alt = rng.choice([b for b in "ACGT" if b != text[start0]])
        rows.append(f"{vcf_chrom}\t{start0 + 1}\t.\t{text[start0]}\t{alt}\t.\tPASS\t.")
        labels.append(f"{label_chrom}\t{start0 + 1}\t{text[start0]}\t{alt}\t{rng.randint(0, 1)}")
    (tmp_path / "v.vcf").write_text("##fileformat=VCFv4.2\n" + f"##contig=<ID={vcf_chrom},length=60000>\n"
                                    + "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO\n" + "\n".join(rows) + "\n")
    (tmp_path / "labels.tsv").write_text("\n".join(labels) + "\n")
    return tmp_path / "g.fa", tmp_path / "v.vcf", tmp_path / "labels.tsv"


def _variant_data(fasta: Path, vcf: Path, labels: Path):
    from genomenet.data.splits import SplitConfig
    from genomenet.data.variant_datamodule import VariantDataModule

    return VariantDataModule(str(fasta), str(vcf), str(labels), context_length=64, markov_max_order=2,
                             split=SplitConfig(block_size=2_000), cache_dir=str(fasta.parent / "cache"))


def test_labels_naming_the_contig_as_the_fasta_does_label_a_chr_prefixed_vcf(tmp_path: Path) -> None:
    data = _variant_data(*_variants_and_labels(tmp_path, vcf_chrom="chr20", label_chrom="20"))
    data.setup()
    assert sum(len(data.splits[s]) for s in data.splits) > 150


def test_labels_that_name_no_variant_of_the_vcf_are_said(tmp_path: Path, capsys) -> None:
    from genomenet.errors import InputFileError

    fasta, vcf, labels = _variants_and_labels(tmp_path, vcf_chrom="20", label_chrom="20")
    with open(labels, "a") as handle:
        handle.write("20\t59999\tA\tG\t1\n")
    _variant_data(fasta, vcf, labels).setup()
    assert f"1 of 201 rows of {labels} name no ALT of {vcf} (first: 20:59999 A>G)" in capsys.readouterr().err
    labels.write_text("chrom\tpos\tref\talt\tlabel\n21\t100\tA\tG\t1\n")
    with pytest.raises(InputFileError, match=re.escape(f"1 of 1 rows of {labels} name no ALT of {vcf}")):
        _variant_data(fasta, vcf, labels).setup()
