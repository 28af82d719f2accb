"""User errors in `genomenet` commands: one line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import logging
import random
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from test_training_fit import tiny_fit_args

from genomenet.cli import main
from genomenet.data.datamodule import GenomeDataModule

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")


def one_error_line(capfd: pytest.CaptureFixture, argv: list[str]) -> str:
    code = main(argv)
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith("genomenet: error: ")
    return err[0]


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["--model.backbone.segment_lengths", "[8,16]", "--model.backbone.dilation_rates", "[1]"], "dilation_rates"),
        (["--data.fasta", "no/such/genome.fa"], "no/such/genome.fa"),
        (["--data.fasta", str(REPO / "data")], "data: a folder, not a FASTA file"),
        (["--data.context_length", "4096"], "context_length"),
        (["--model.backbone.n_layerz", "3"], "n_layerz"),
        (["--model.backbone.attention", "sparse"], "attention"),
        (["--data.sequence_parallel_size", "2"], "sequence_parallel_size"),
        (["--model.backbone.vocab_size", "12"], "vocab_size"),
        (["--model.init_weights", "no/such/model"], "no/such/model"),
        (["--trainer.enable_checkpointing", "false"], "enable_checkpointing"),  # Lightning's own misconfiguration
        (["--model.optimizer.lr", "-1"], "lr=-1.0 must be > 0"),
        (["--model.optimizer.betas", "[0.9, 1.5]"], "betas"),
        (["--report.kmer_sizes", "[]"], "report.kmer_sizes"),
        (["--report.kmer_sizes", "[0]"], "report.kmer_sizes"),
        (["--data.tokenizer", "kmer", "--data.kmer_size", "13"], "kmer_size must be in 1..12, got 13"),
        (["--data.tokenizer", "kmer", "--data.kmer_size", "0"], "kmer_size must be in 1..12, got 0"),
        (["--data.num_workers", "-1"], "data.num_workers=-1 must be >= 0"),
        (["--data.samples_per_epoch", "-3"], "data.samples_per_epoch=-3 must be >= 1"),
    ],
)
def test_bad_fit_config_values_fail_before_training_with_one_line(
    capfd: pytest.CaptureFixture, tmp_path: Path, overrides: list[str], named: str
) -> None:
    line = one_error_line(capfd, ["fit", "--config", QUICKSTART, *overrides, "--checkpoint.dirpath", str(tmp_path)])
    assert named in line
    assert not (tmp_path / "last.ckpt").exists()


def test_unknown_key_in_a_config_file_is_named(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  backbone:\n    n_layerz: 3\n")
    assert "n_layerz" in one_error_line(capfd, ["fit", "--config", QUICKSTART, "--config", str(bad)])


def test_export_of_a_missing_checkpoint_is_one_line(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    assert "missing.ckpt" in one_error_line(capfd, ["export", str(tmp_path / "missing.ckpt"), str(tmp_path / "m")])


def test_unknown_command_is_one_line(capfd: pytest.CaptureFixture) -> None:
    assert "frobnicate" in one_error_line(capfd, ["frobnicate"])


@pytest.mark.slow
def test_the_installed_command_reports_a_config_error_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "genomenet.cli", "fit", "--config", QUICKSTART,
         "--model.backbone.segment_lengths", "[8,16]", "--model.backbone.dilation_rates", "[1]"],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [
        "genomenet: error: model segment_lengths has 2 entries but dilation_rates has 1: "
        "give one dilation rate per segment length"
    ]


def not_a_checkpoint(tmp_path: Path, kind: str) -> Path:
    """A file that torch.load refuses: random bytes, text, or a zip archive that is no PyTorch file."""
    path = tmp_path / f"{kind}.ckpt"
    if kind == "random_bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "text":
        path.write_text(">chr1\nACGTACGT\n")
    else:
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("notes.txt", "not a tensor in sight")
    return path


@pytest.mark.parametrize("kind", ["random_bytes", "text", "zip"])
def test_export_of_a_file_that_is_no_checkpoint_is_one_line(capfd: pytest.CaptureFixture, tmp_path: Path,
                                                              kind: str) -> None:
    path = not_a_checkpoint(tmp_path, kind)
    line = one_error_line(capfd, ["export", str(path), str(tmp_path / "out")])
    assert line.startswith(f"genomenet: error: {path}: not a genomenet checkpoint or exported model directory (")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", ["random_bytes", "missing"])
def test_fit_with_a_ckpt_path_that_is_no_checkpoint_is_one_line(capfd: pytest.CaptureFixture, tmp_path: Path,
                                                                kind: str) -> None:
    path = tmp_path / "missing.ckpt" if kind == "missing" else not_a_checkpoint(tmp_path, kind)
    line = one_error_line(capfd, ["fit", "--config", QUICKSTART, "--ckpt_path", str(path), "--trainer.max_steps", "1",
                                  "--trainer.logger", "false", "--checkpoint.dirpath", str(tmp_path / "checkpoints")])
    assert str(path) in line
    assert not (tmp_path / "checkpoints").exists()


def test_overlapping_kmers_are_refused_for_language_model_training(capfd: pytest.CaptureFixture,
                                                                   tmp_path: Path) -> None:
    """With stride < k a causal model would see part of each target in its input; refused before any training."""
    line = one_error_line(capfd, ["fit", "--config", QUICKSTART, "--data.tokenizer", "kmer", "--data.kmer_size", "3",
                                  "--data.kmer_stride", "1", "--checkpoint.dirpath", str(tmp_path / "checkpoints")])
    assert "data.kmer_stride=1 < kmer_size=3 (overlapping k-mers) is not supported" in line
    assert not (tmp_path / "checkpoints").exists()
    dm = GenomeDataModule("genome.fa", tokenizer="kmer", kmer_size=3, kmer_stride=3, context_length=1026)
    assert dm.tokenizer.stride == 3


@pytest.mark.parametrize(("config", "command"), [("configs/finetune_regions.yaml", "genomenet classify"),
                                                 ("configs/segment_genes.yaml", "genomenet annotate")])
def test_predict_with_a_fine_tuned_model_names_the_command_that_applies_it(capfd: pytest.CaptureFixture,
                                                                          tmp_path: Path, config: str,
                                                                          command: str) -> None:
    data = ["--data.fasta", "data/dmel_chr4.fa.gz", "--data.regions", str(tmp_path / "labels.bed")] \
        if "regions" in config else []
    line = one_error_line(capfd, ["predict", "--config", config, *data, "--checkpoint.dirpath", str(tmp_path)])
    assert "genomenet predict scores language models" in line and command in line


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["--checkpoint.monitor", "val/losss"], "checkpoint.monitor: 'val/losss' is not a metric this run logs"),
        (["--trainer.callbacks+=EarlyStopping", "--trainer.callbacks.monitor=val/losss"], "val/losss"),
    ],
)
def test_a_monitored_metric_the_run_never_logs_is_one_line_at_the_first_validation(
    capfd: pytest.CaptureFixture, tmp_path: Path, overrides: list[str], named: str
) -> None:
    code = main([*tiny_fit_args(tmp_path, 6), *overrides])
    err = capfd.readouterr().err
    line = err.strip().splitlines()[-1]   # after the genome cache's progress bar
    assert code == 2 and line.startswith("genomenet: error: ") and "Traceback" not in err
    assert named in line and "val/loss" in line.split(named)[-1]   # and the metrics it could have meant
    saved = [torch.load(f, weights_only=True)["global_step"] for f in (tmp_path / "checkpoints").glob("*.ckpt")]
    assert max(saved, default=0) <= 2   # stopped at the first validation, not after training


def test_validate_does_not_ask_for_a_training_metric_that_fit_monitors(tmp_path: Path) -> None:
    args = tiny_fit_args(tmp_path, 2)
    assert main([*args, "--checkpoint.monitor", "train/loss"]) == 0
    ckpt = str(tmp_path / "checkpoints" / "last.ckpt")
    assert main(["validate", *args[1:], "--checkpoint.monitor", "train/loss", "--ckpt_path", ckpt]) == 0


def test_lightnings_cloud_service_tip_is_dropped_and_its_other_messages_kept(caplog: pytest.LogCaptureFixture) -> None:
    from lightning.pytorch.utilities.rank_zero import rank_zero_info

    from genomenet.training.cli import quiet_known_warnings

    quiet_known_warnings()
    with caplog.at_level(logging.INFO):
        rank_zero_info("💡 Tip: For seamless cloud logging and experiment tracking, try installing [litlogger]")
        rank_zero_info("GPU available: False, used: False")
    assert [r.getMessage() for r in caplog.records] == ["GPU available: False, used: False"]


@pytest.mark.parametrize("where", ["file", "under_a_file"])
def test_export_into_a_path_that_is_a_file_is_one_line(capfd: pytest.CaptureFixture, tmp_path: Path,
                                                       where: str) -> None:
    from genomenet.model.longnet import LongNet, LongNetConfig
    from genomenet.model.pretrained import PretrainedInfo, export_model

    cfg = LongNetConfig(vocab_size=10, n_layers=1, d_model=16, n_heads=2, segment_lengths=[8], dilation_rates=[1])
    model = export_model(LongNet(cfg), PretrainedInfo(cfg), tmp_path / "m")
    taken = tmp_path / "taken.txt"
    taken.write_text("a user's file\n")
    out = taken if where == "file" else taken / "model"
    assert str(out) in one_error_line(capfd, ["export", str(model), str(out)])
    assert taken.read_text() == "a user's file\n"


def test_predict_with_a_text_model_names_the_commands_that_score_it(capfd: pytest.CaptureFixture,
                                                                    tmp_path: Path) -> None:
    line = one_error_line(capfd, ["predict", "--config", "configs/text_lm.yaml", "--data.path",
                                  "data/text/hamlet_gut.txt.gz", "--checkpoint.dirpath", str(tmp_path)])
    assert "a TextLM is scored with `genomenet validate`" in line, line


def test_a_cache_folder_that_is_a_file_is_one_line(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    """data.cache_dir (or $GENOMENET_CACHE) naming a file: the OS's words for the path, not a traceback."""
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file\n")
    line = one_error_line(capfd, ["fit", "--config", str(REPO / "configs" / "text_lm.yaml"), "--data.path",
                                  str(REPO / "data" / "text" / "hamlet_gut.txt.gz"), "--data.cache_dir",
                                  str(not_a_folder), "--checkpoint.dirpath", str(tmp_path / "checkpoints")])
    assert str(not_a_folder) in line, line
    assert not (tmp_path / "checkpoints").exists()


def test_segments_that_cannot_be_split_over_the_sequence_group_fail_before_training_with_one_line(
    capfd: pytest.CaptureFixture, tmp_path: Path
) -> None:
    """128-token windows over 2 ranks are chunks of 64: a 48-token segment neither divides nor spans whole chunks
    (the attention would raise a ValueError with a traceback on every rank at the first step)."""
    args = tiny_fit_args(tmp_path, 1)
    args[args.index("[64,128]")] = "[48,128]"
    line = one_error_line(capfd, [*args, "--data.sequence_parallel_size", "2", "--trainer.accelerator", "cpu",
                                  "--trainer.devices", "2"])
    assert "sequence_parallel_size=2" in line and "segment length 48" in line, line
    assert not (tmp_path / "checkpoints" / "last.ckpt").exists()


def test_a_file_where_an_output_folder_must_go_is_named_so(tmp_path: Path) -> None:
    """`--out g.fa/x.tsv` with g.fa a file: mkdir's own words were 'g.fa: File exists'."""
    from genomenet.cli import os_error_line

    (tmp_path / "g.fa").write_text(">a\nACGT\n")
    for folder in (tmp_path / "g.fa", tmp_path / "g.fa" / "x" / "y"):
        with pytest.raises(OSError) as caught:
            folder.mkdir(parents=True, exist_ok=True)
        assert os_error_line(caught.value) == f"{tmp_path / 'g.fa'}: a file, where a folder is needed"
