"""`genomenet fit` on a labelled BED: the head learns a signal planted in real sequence, the report ends with its
contract lines, the exported classifier round-trips and `genomenet classify` applies it."""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from Bio.Seq import Seq
from conftest import DMEL
from inference_models import tiny_model

from genomenet.cli import main
from genomenet.data.tokenizers import make_tokenizer
from genomenet.downstream import regions
from genomenet.errors import ConfigError
from genomenet.model.classifier import CHECKPOINT_KEY, ClassifierInfo, export_classifier, load_classifier
from genomenet.model.heads import RegionClassifierNet
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.training.finetune import RegionClassifier

MOTIF = "TGACGTCATAGGCCTA"  # not its own reverse complement
WINDOW = 128


def planted_genome(folder: Path, n: int = 600, seed: int = 0) -> tuple[Path, Path]:
    """Real D. melanogaster sequence with MOTIF written at the centre of the positive regions, read 5'->3' on the
    region's strand (so a minus-strand positive holds the motif's reverse complement on the forward strand)."""
    rng = random.Random(seed)
    with gzip.open(DMEL, "rt") as handle:
        name = handle.readline()[1:].split()[0]
        seq = list("".join(line.strip() for line in handle))
    centres = [c for c in range(200, len(seq) - 200, 300) if "N" not in "".join(seq[c - 64:c + 64]).upper()]
    lines = []
    for centre in rng.sample(centres, n):
        label, strand = rng.choice(["motif", "plain"]), rng.choice("+-")
        if label == "motif":
            site = MOTIF if strand == "+" else str(Seq(MOTIF).reverse_complement())
            seq[centre - 8:centre + 8] = site
        lines.append((centre, f"{name}\t{centre}\t{centre + 1}\t{label}\t0\t{strand}\n"))
    fasta = folder / "planted.fa"
    fasta.write_text(f">{name}\n" + "".join("".join(seq[i:i + 80]) + "\n" for i in range(0, len(seq), 80)))
    bed = folder / "labels.bed"
    bed.write_text("".join(line for _, line in sorted(lines)))
    return fasta, bed


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One fine-tuning run (warm-started from a tiny exported model), shared by the tests below."""
    folder = tmp_path_factory.mktemp("finetune")
    fasta, bed = planted_genome(folder)
    backbone = tiny_model(folder / "backbone", seed=0)
    argv = ["fit", "--config", str(Path(__file__).parents[1] / "configs" / "finetune_regions.yaml"),
            "--data.fasta", str(fasta), "--data.regions", str(bed), "--model.init_weights", str(backbone),
            "--data.context_length", str(WINDOW), "--data.split.block_size", "20000", "--data.cache_dir",
            str(folder / "cache"), "--model.optimizer.lr", "0.003", "--model.optimizer.warmup_steps", "10",
            "--model.backbone_lr_scale", "1.0", "--trainer.max_epochs", "6", "--trainer.accelerator", "cpu",
            "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
            "--checkpoint.dirpath", str(folder / "run" / "checkpoints"), "--report.export_dir",
            str(folder / "run" / "model"), "--report.kmer_sizes", "[2, 4]"]
    return {"folder": folder, "fasta": fasta, "bed": bed, "argv": argv, "backbone": backbone}


def test_a_stopped_fine_tune_resumes_from_its_checkpoint_with_ckpt_path(run: dict, tmp_path: Path) -> None:
    """`fit --ckpt_path` reads the classifier's settings back from the checkpoint (as the class's init_args) and
    trains on to max_epochs."""
    folder = tmp_path / "resume"
    argv = [a.replace(str(run["folder"] / "run"), str(folder)) for a in run["argv"]]
    short = ["--trainer.limit_train_batches", "2", "--report.kmer_sizes", "[2]"]
    assert main([*argv, "--trainer.max_epochs", "1", *short]) == 0
    last = folder / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 2
    assert main([*argv, "--trainer.max_epochs", "2", *short, "--ckpt_path", str(last)]) == 0
    assert torch.load(last, weights_only=False)["global_step"] == 4   # the second epoch's two batches


def test_last_holds_the_final_epoch_when_later_validations_do_not_improve(run: dict, tmp_path: Path) -> None:
    """Monitoring the epoch, lowest best, only the first validation improves; Lightning 2.6 alone leaves that epoch
    in last.ckpt, so `--ckpt_path last.ckpt` would train the later epochs again."""
    argv = [a.replace(str(run["folder"] / "run"), str(tmp_path)) for a in run["argv"]]
    assert main([*argv, "--trainer.max_epochs", "3", "--trainer.limit_train_batches", "2", "--report.enabled",
                 "false", "--checkpoint.monitor", "epoch", "--checkpoint.mode", "min"]) == 0
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 6


@pytest.mark.slow
def test_fit_learns_a_planted_motif_and_ends_with_the_contract_lines(run: dict, capsys) -> None:
    assert main(run["argv"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    accuracy = re.fullmatch(r"held-out accuracy: (\d\.\d{3}) \(k-mer baseline: (\d\.\d{3})\)", out[-2])
    assert accuracy, out[-2]
    assert float(accuracy.group(1)) >= 0.9
    assert out[-1] == f"model: {run['folder'] / 'run' / 'model'}"
    table = "\n".join(out)
    assert "| k-mer spectrum (k=" in table and "| linear probe (C=" in table
    interval = r"95% bootstrap interval over \d+ test stretches of 100,000 bases: [+-]\d\.\d{3} to [+-]\d\.\d{3}"
    differences = [line for line in out if line.startswith("accuracy, fine-tuned minus ")]
    assert len(differences) == 2, differences   # the k-mer baseline and the probe
    assert all(re.fullmatch(rf".+: [+-]\d\.\d{{3}} \(({interval}|no interval: .+)\)", line) for line in differences)
    assert (run["folder"] / "run" / "split.tsv").is_file()
    saved = json.loads((run["folder"] / "run" / "held_out_report.json").read_text())
    kmer = next(d for name, d in saved["accuracy_differences"].items() if name.startswith("k-mer spectrum"))
    assert kmer["difference"] == pytest.approx(saved["test"]["fine-tuned LongNet"]["accuracy"] - next(
        m["accuracy"] for name, m in saved["test"].items() if name.startswith("k-mer spectrum")))


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".tsv", ".bed"])
def test_classify_applies_the_exported_classifier_to_a_bed(run: dict, capsys, suffix: str) -> None:
    model = run["folder"] / "run" / "model"
    if not model.is_dir():
        pytest.skip("needs the fine-tuning run")
    split = run["folder"] / "run" / "split.tsv"
    rows = [r for r in csv.DictReader(open(split), delimiter="\t") if r["split"] == "test"]
    bed = run["folder"] / "test.bed"
    bed.write_text("".join(f"{r['chrom']}\t{r['start']}\t{r['end']}\t{r['label']}\t0\t{r['strand']}\n" for r in rows))
    out = run["folder"] / f"predicted{suffix}"
    assert main(["classify", "--model", str(model), "--fasta", str(run["fasta"]), "--regions", str(bed),
                 "--out", str(out), "--cache-dir", str(run["folder"] / "cache"), "--quiet"]) == 0
    lines = [line.split("\t") for line in out.read_text().splitlines()]
    if suffix == ".tsv":
        assert lines[0] == ["chrom", "start", "end", "name", "strand", "predicted", "p_motif", "p_plain"]
        predicted = [row[5] for row in lines[1:]]
        assert all(abs(float(row[6]) + float(row[7]) - 1) < 1e-5 for row in lines[1:])
    else:
        predicted = [row[3] for row in lines]
        assert all(0 <= int(row[4]) <= 1000 for row in lines)
    assert np.mean([p == r["label"] for p, r in zip(predicted, rows, strict=True)]) >= 0.9


@pytest.mark.slow
def test_reading_the_region_on_both_strands_from_a_probe_started_head_learns_the_motif(run: dict, capsys) -> None:
    out_dir = run["folder"] / "region_both"
    argv = [*run["argv"], "--model.pool_over", "region", "--model.strands", "both", "--model.head_init", "probe",
            "--model.head_init_windows", "64", "--trainer.max_epochs", "3", "--checkpoint.dirpath",
            str(out_dir / "checkpoints"), "--report.export_dir", str(out_dir / "model")]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "head initialised from a linear probe on the frozen features (C=" in out
    accuracy = re.search(r"held-out accuracy: (\d\.\d{3}) ", out)
    assert accuracy and float(accuracy.group(1)) >= 0.9
    config = json.loads((out_dir / "model" / "config.json").read_text())
    assert (config["pool_over"], config["strands"]) == ("region", "both")
    assert "frames" not in config["window"]   # one frame: an export older genomenets still read
    predicted = out_dir / "predicted.tsv"
    assert main(["classify", "--model", str(out_dir / "model"), "--fasta", str(run["fasta"]), "--regions",
                 str(run["bed"]), "--out", str(predicted), "--cache-dir", str(run["folder"] / "cache"),
                 "--quiet"]) == 0
    rows = [line.split("\t") for line in predicted.read_text().splitlines()[1:]]
    assert np.mean([row[5] == row[3] for row in rows]) >= 0.9


def test_an_exported_classifier_gives_the_same_probabilities_as_before_export(tmp_path: Path) -> None:
    tokenizer = make_tokenizer(1)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=2, segment_lengths=[32, 64],
                        dilation_rates=[1, 2])
    spans = torch.tensor([[10, 30], [5, 6], [0, 64]])
    for pooling, pool_over, strands in [("mean", "window", "one"), ("attention", "region", "one"),
                                        ("last", "window", "both"), ("mean", "region", "both")]:
        causal = pooling == "last" or strands == "both"
        net = RegionClassifierNet(LongNet(cfg, causal=causal), 3, pooling, tokenizer.pad_id, pool_over=pool_over,
                                  strands=strands, reverse_complement_ids=tokenizer.reverse_complement_ids).eval()
        info = ClassifierInfo(cfg, causal, 1, pooling, {"kind": "multiclass", "classes": ["a", "b", "c"]},
                              {"length": 64, "mode": "region", "flank": 5}, pool_over, strands)
        folder = tmp_path / f"{pooling}_{pool_over}_{strands}"
        loaded = load_classifier(export_classifier(net, info, folder), make_tokenizer)
        ids = torch.randint(0, 4, (3, 64))
        ids[0, 40:] = tokenizer.pad_id  # a short region
        with torch.no_grad():
            assert torch.equal(net(ids, spans), loaded(ids, spans))
        assert loaded.info == info


def test_a_window_read_in_every_frame_scores_the_mean_of_its_frames_and_round_trips(tmp_path: Path) -> None:
    tokenizer = make_tokenizer(2)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=2, d_model=32, n_heads=2, segment_lengths=[16, 32],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=True), 3, "mean", tokenizer.pad_id).eval()
    with torch.no_grad():
        net.feature_mean.normal_()
        net.feature_scale.uniform_(0.5, 2.0)
        ids = torch.randint(0, 16, (4, 2, 32))
        per_frame = torch.stack([net(ids[:, f]) for f in range(2)], 1)
        torch.testing.assert_close(net(ids), per_frame.mean(1))
        info = ClassifierInfo(cfg, True, 2, "mean", {"kind": "multiclass", "classes": ["a", "b", "c"]},
                              {"length": 64, "mode": "centered", "flank": 0, "frames": "all"})
        loaded = load_classifier(export_classifier(net, info, tmp_path / "model"), make_tokenizer)
        assert torch.equal(loaded(ids), net(ids)) and loaded.info.window["frames"] == "all"


def test_fit_reading_every_kmer_frame_exports_it_and_classify_reads_every_frame_as_the_report_did(
        run: dict, capsys, monkeypatch) -> None:
    out_dir = run["folder"] / "frames"
    backbone = tiny_model(run["folder"] / "backbone_k2", k=2, seed=0)
    argv = [*run["argv"], "--model.init_weights", str(backbone), "--data.kmer_size", "2", "--data.frames", "all",
            "--model.pool_over", "region", "--trainer.max_epochs", "2",
            "--checkpoint.dirpath", str(out_dir / "checkpoints"), "--report.export_dir", str(out_dir / "model")]
    assert main(argv) == 0
    assert re.search(r"held-out accuracy: \d\.\d{3} ", capsys.readouterr().out)
    assert json.loads((out_dir / "model" / "config.json").read_text())["window"]["frames"] == "all"
    rows = [r for r in csv.DictReader(open(out_dir / "split.tsv"), delimiter="\t") if r["split"] == "test"]
    bed = out_dir / "test.bed"
    bed.write_text("".join(f"{r['chrom']}\t{r['start']}\t{r['end']}\t{r['label']}\t0\t{r['strand']}\n" for r in rows))
    predicted, shapes = out_dir / "predicted.tsv", []
    original = regions.window_outputs
    monkeypatch.setattr(regions, "window_outputs", lambda net, tokens, *a: shapes.append(tokens.shape[1:])
                        or original(net, tokens, *a))
    assert main(["classify", "--model", str(out_dir / "model"), "--fasta", str(run["fasta"]), "--regions", str(bed),
                 "--out", str(predicted), "--cache-dir", str(run["folder"] / "cache"), "--quiet"]) == 0
    assert shapes and all(shape == (2, WINDOW // 2) for shape in shapes)   # both frames of every window
    scored = [line.split("\t") for line in predicted.read_text().splitlines()[1:]]
    report = json.loads((out_dir / "held_out_report.json").read_text())["test"]["fine-tuned LongNet"]
    assert np.mean([row[5] == row[3] for row in scored]) == pytest.approx(report["accuracy"], abs=1e-9)


def test_backbone_dropout_overrides_the_pre_trained_models_and_keeps_its_weights(tmp_path: Path) -> None:
    backbone = str(tiny_model(tmp_path / "backbone", seed=0, dropout=0.1))

    def dropout_rates(module: RegionClassifier) -> set[float]:
        return {m.p for m in module.backbone.modules() if isinstance(m, torch.nn.Dropout)}

    kept, off = RegionClassifier(init_weights=backbone), RegionClassifier(init_weights=backbone, backbone_dropout=0.0)
    assert dropout_rates(kept) == {0.1} and dropout_rates(off) == {0.0} and off.backbone.cfg.dropout == 0.0
    assert dropout_rates(RegionClassifier(backbone=LongNetConfig(dropout=0.2), backbone_dropout=0.3)) == {0.3}
    ids = torch.randint(0, 4, (2, 64))
    with torch.no_grad():   # the same weights: equal in eval mode; in training mode only `off` is deterministic
        assert torch.equal(kept.backbone.eval().hidden_states(ids), off.backbone.eval().hidden_states(ids))
        assert torch.equal(off.backbone.train().hidden_states(ids), off.backbone.eval().hidden_states(ids))
        assert not torch.equal(kept.backbone.train().hidden_states(ids), kept.backbone.eval().hidden_states(ids))
    with pytest.raises(ConfigError, match="backbone_dropout"):
        RegionClassifier(init_weights=backbone, backbone_dropout=1.0)


def test_validate_reports_the_checkpoint_it_is_given_into_a_new_folder(run: dict, tmp_path: Path, capsys) -> None:
    argv = [a.replace(str(run["folder"] / "run"), str(tmp_path / "fit")) for a in run["argv"]]
    short = ["--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2", "--report.kmer_sizes", "[2]"]
    assert main([*argv, *short, "--report.enabled", "false"]) == 0
    given = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    check = ["validate", *[a.replace(str(tmp_path / "fit"), str(tmp_path / "check")) for a in argv[1:]], *short,
             "--ckpt_path", str(given)]
    assert main(check) == 0
    out = capsys.readouterr().out
    assert "reporting the best checkpoint" not in out and "accuracy, fine-tuned minus k-mer spectrum" in out
    assert (tmp_path / "check" / "held_out_report.json").is_file()


def test_lightnings_weight_averaging_callbacks_average_a_multiclass_head(run: dict, tmp_path: Path) -> None:
    """EMA copies the model in its own setup, before the module's; the CLI builds the head (three classes here)
    before the trainer, so the copy has the real head's shape."""
    lines = run["bed"].read_text().splitlines()
    bed = tmp_path / "three.bed"
    bed.write_text("".join(line.replace("\tplain\t", "\tother\t") + "\n" if i % 2 else line + "\n"
                           for i, line in enumerate(lines)))
    argv = [a.replace(str(run["folder"] / "run"), str(tmp_path / "run")).replace(str(run["bed"]), str(bed))
            for a in run["argv"]]
    assert main([*argv, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "3", "--report.enabled",
                 "false", "--trainer.callbacks+=lightning.pytorch.callbacks.EMAWeightAveraging",
                 "--trainer.callbacks.decay", "0.5"]) == 0
    saved = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert saved["state_dict"]["net.head.weight"].shape[0] == 3
    assert not torch.equal(saved["state_dict"]["net.head.weight"], saved["current_model_state"]["net.head.weight"])


def test_a_fine_tune_with_its_own_backbone_dropout_resumes_from_its_checkpoint(run: dict, tmp_path: Path) -> None:
    """The checkpoint's settings hold the backbone's shape with dropout 0; the pre-trained model's is 0.1."""
    backbone = str(tiny_model(tmp_path / "backbone", seed=0, dropout=0.1))
    argv = [a.replace(str(run["folder"] / "run"), str(tmp_path / "run")).replace(str(run["backbone"]), backbone)
            for a in run["argv"]]
    short = ["--trainer.limit_train_batches", "2", "--report.enabled", "false", "--model.backbone_dropout", "0.0"]
    assert main([*argv, "--trainer.max_epochs", "1", *short]) == 0
    last = tmp_path / "run" / "checkpoints" / "last.ckpt"
    assert main([*argv, "--trainer.max_epochs", "2", *short, "--ckpt_path", str(last)]) == 0
    assert torch.load(last, weights_only=False)["global_step"] == 4


def test_an_exported_classifier_as_a_warm_start_is_one_line_saying_so(run: dict, capfd, tmp_path: Path) -> None:
    tokenizer = make_tokenizer(1)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=32, n_heads=2, segment_lengths=[64, 128],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=True), 2, "mean", tokenizer.pad_id)
    info = ClassifierInfo(cfg, True, 1, "mean", {"kind": "binary", "classes": ["motif", "plain"]},
                          {"length": WINDOW, "mode": "centered", "flank": 0})
    exported = export_classifier(net, info, tmp_path / "classifier")
    code = main([*run["argv"], "--model.init_weights", str(exported)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "an exported fine-tuned model (genomenet-classifier/1), not a pre-trained language model" in err[0]


def test_a_warm_start_whose_tokens_do_not_match_is_one_line(run: dict, capfd) -> None:
    code = main([*run["argv"], "--data.kmer_size", "2"])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "init_weights" in err[0] and "1-mer" in err[0]


def test_a_label_column_mixing_numbers_and_words_is_one_line(run: dict, capfd, tmp_path: Path) -> None:
    bed = tmp_path / "mixed.bed"
    lines = run["bed"].read_text().splitlines()
    bed.write_text("\n".join([lines[0].replace("motif", "1").replace("plain", "1"), *lines[1:]]) + "\n")
    code = main([*run["argv"], "--data.regions", str(bed)])
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(bed) in err[0] and "line 2" in err[0]


def test_export_writes_a_fine_tuning_checkpoints_classifier_as_fit_would(tmp_path: Path, capsys) -> None:
    tokenizer = make_tokenizer(1)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=16, n_heads=2, segment_lengths=[32, 64],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=False), 3, "mean", tokenizer.pad_id).eval()
    info = ClassifierInfo(cfg, False, 1, "mean", {"kind": "multiclass", "classes": ["a", "b", "c"]},
                          {"length": 64, "mode": "centered", "flank": 0})
    ckpt = tmp_path / "epoch=3.ckpt"   # what RegionClassifier's checkpoints hold
    torch.save({"state_dict": {f"net.{k}": v for k, v in net.state_dict().items()}, CHECKPOINT_KEY: info.to_dict(),
                "hyper_parameters": {"class_path": "genomenet.training.finetune.RegionClassifier"}}, ckpt)
    assert main(["export", str(ckpt), str(tmp_path / "model")]) == 0
    assert capsys.readouterr().out.strip() == f"model: {tmp_path / 'model'}"
    loaded = load_classifier(tmp_path / "model", make_tokenizer)
    ids, spans = torch.randint(0, 4, (2, 64)), torch.tensor([[0, 64], [10, 20]])
    with torch.no_grad():
        assert torch.equal(net(ids, spans), loaded(ids, spans))
    assert loaded.info == info
