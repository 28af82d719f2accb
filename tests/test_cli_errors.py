"""User errors in `genomenet` commands: one line on stderr naming the problem, exit code 2, no traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from genomenet.cli import main

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
        (["--data.context_length", "4096"], "context_length"),
        (["--model.backbone.n_layerz", "3"], "n_layerz"),
        (["--model.backbone.attention", "sparse"], "attention"),
        (["--data.sequence_parallel_size", "2"], "sequence_parallel_size"),
        (["--model.backbone.vocab_size", "12"], "vocab_size"),
        (["--model.init_weights", "no/such/model"], "no/such/model"),
        (["--trainer.enable_checkpointing", "false"], "enable_checkpointing"),  # Lightning's own misconfiguration
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
