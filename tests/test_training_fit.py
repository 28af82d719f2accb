"""`genomenet fit` end to end on the shipped D. melanogaster slice: final lines, exported model, exact resume."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genomenet.cli import main
from genomenet.model.pretrained import load_pretrained

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = str(REPO / "configs" / "quickstart.yaml")
FINAL = re.compile(r"held-out bits per base: (\d+\.\d{3}) \(Markov baseline: (\d+\.\d{3})\)\nmodel: (.+)\n?$")


def loggers(save_dir: Path) -> str:
    kinds = ("CSVLogger", "TensorBoardLogger")
    return json.dumps([{"class_path": f"lightning.pytorch.loggers.{k}", "init_args": {"save_dir": str(save_dir)}}
                       for k in kinds])


def tiny_fit_args(tmp_path: Path, steps: int) -> list[str]:
    """The quickstart config shrunk to seconds: one small layer, short windows, no long-context curve."""
    return [
        "fit", "--config", QUICKSTART,
        "--model.backbone.n_layers", "1", "--model.backbone.d_model", "32",
        "--model.backbone.segment_lengths", "[64,128]", "--model.backbone.dilation_rates", "[1,2]",
        "--model.optimizer.warmup_steps", "0", "--model.optimizer.min_lr_ratio", "1.0",  # constant learning rate
        "--data.context_length", "128", "--data.batch_size", "4", "--data.samples_per_epoch", "8",
        "--data.cache_dir", str(tmp_path / "cache"), "--data.val_samples", "8",
        "--trainer.max_steps", str(steps), "--trainer.val_check_interval", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.num_sanity_val_steps", "0",
        "--trainer.log_every_n_steps", "1",
        "--trainer.logger", loggers(tmp_path / "runs"),
        "--checkpoint.dirpath", str(tmp_path / "checkpoints"), "--checkpoint.every_n_train_steps", "2",
        "--report.export_dir", str(tmp_path / "model"), "--report.markov_max_order", "4",
        "--report.context_lengths", "[8,32]", "--report.score_tokens", "32", "--report.max_windows", "8",
    ]


@pytest.mark.slow
def test_fit_ends_with_held_out_bits_and_the_exported_model(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "genomenet.cli", *tiny_fit_args(tmp_path, steps=4)],
        capture_output=True, text=True, cwd=REPO, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    match = FINAL.search(proc.stdout)
    assert match, proc.stdout[-1000:]
    model_bits, markov_bits = float(match[1]), float(match[2])
    assert 0.5 < model_bits < 4 and 0.5 < markov_bits < 2.5
    model = load_pretrained(match[3])
    assert model.cfg.n_layers == 1 and model.causal
    assert (tmp_path / "model" / "long_context.png").stat().st_size > 0
    assert "far copy (>8 back)" in proc.stdout  # the long-context table says where context pays
    assert re.search(r"32 bases of context instead of 8: [+-]\d\.\d{4} bits per base saved", proc.stdout)
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    metrics = next((tmp_path / "runs").rglob("metrics.csv")).read_text()
    for name in ("train/loss", "train/bits_per_base", "train/perplexity", "val/bits_per_base"):
        assert name in metrics
    assert list((tmp_path / "runs").rglob("events.out.tfevents.*")), "no TensorBoard log"


@pytest.mark.slow
def test_validate_from_a_checkpoint_prints_the_held_out_report_without_exporting(tmp_path: Path, capsys) -> None:
    args = tiny_fit_args(tmp_path, steps=2)
    assert main(args + ["--report.enabled", "false"]) == 0
    capsys.readouterr()
    assert main(["validate", *args[1:], "--ckpt_path", "last"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"held-out bits per base: \d\.\d{3} \(Markov baseline: \d\.\d{3}\)\n", out), out[-1000:]
    assert "model:" not in out and not (tmp_path / "model" / "model.safetensors").exists()


def final_weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return torch.load(checkpoint, weights_only=True)["state_dict"]


@pytest.mark.slow
def test_resuming_from_the_last_checkpoint_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    no_report = ["--report.enabled", "false"]
    assert main(tiny_fit_args(straight, steps=6) + no_report) == 0
    assert main(tiny_fit_args(resumed, steps=4) + no_report) == 0
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert main(tiny_fit_args(resumed, steps=6) + no_report + ["--ckpt_path", "last"]) == 0
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 6
    a, b = final_weights(straight / "checkpoints" / "last.ckpt"), final_weights(resumed / "checkpoints" / "last.ckpt")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_a_run_that_ends_between_saves_leaves_its_final_step_in_last_and_resumes_from_it(tmp_path: Path) -> None:
    """Saves every 3 steps; runs of 5 and 7 steps end between saves (Lightning would leave step 3, then 6, there)."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ["--report.enabled", "false", "--checkpoint.every_n_train_steps", "3", "--trainer.val_check_interval", "3"]
    assert main(tiny_fit_args(straight, steps=7) + args) == 0
    assert main(tiny_fit_args(resumed, steps=5) + args) == 0
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 5
    assert main(tiny_fit_args(resumed, steps=7) + args + ["--ckpt_path", "last"]) == 0
    a, b = final_weights(straight / "checkpoints" / "last.ckpt"), final_weights(resumed / "checkpoints" / "last.ckpt")
    assert torch.load(straight / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 7
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


@pytest.mark.slow
def test_validate_reads_the_checkpoint_that_fit_wrote(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    args = tiny_fit_args(tmp_path, steps=2) + ["--report.enabled", "false"]
    assert main(args) == 0
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    assert main(["validate", *args[1:], "--ckpt_path", str(ckpt)]) == 0
    assert "val/bits_per_base" in capsys.readouterr().out


@pytest.mark.slow
def test_masked_lm_fits_and_reports_masked_token_bits(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(tiny_fit_args(tmp_path, steps=2) + ["--model.objective.kind", "masked"]) == 0
    out = capsys.readouterr().out
    assert "masked tokens (bidirectional model" in out and FINAL.search(out)
    assert not load_pretrained(tmp_path / "model").causal


@pytest.mark.slow
def test_resuming_in_the_middle_of_an_epoch_reproduces_an_uninterrupted_run(tmp_path: Path) -> None:
    """Four batches an epoch, interrupted two batches into the second: the resumed run trains on its last two next."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    args = ["--report.enabled", "false", "--data.samples_per_epoch", "16"]
    assert main(tiny_fit_args(straight, steps=10) + args) == 0
    assert main(tiny_fit_args(resumed, steps=6) + args) == 0
    assert main(tiny_fit_args(resumed, steps=10) + args + ["--ckpt_path", "last"]) == 0
    a, b = final_weights(straight / "checkpoints" / "last.ckpt"), final_weights(resumed / "checkpoints" / "last.ckpt")
    for name in a:
        torch.testing.assert_close(b[name], a[name], rtol=0, atol=0, msg=name)


def saved_steps(checkpoints: Path) -> list[int]:
    """Steps of the periodic checkpoints in a folder (files appear whole: the writer renames them into place)."""
    return [int(m[1]) for p in checkpoints.glob("*.ckpt") if (m := re.search(r"step=(\d+)\.ckpt$", p.name))]


@pytest.mark.slow
def test_fit_killed_mid_training_and_rerun_with_ckpt_path_last_ends_with_the_uninterrupted_weights(
    tmp_path: Path,
) -> None:
    """SIGKILL (no handler runs, no final checkpoint) once the periodic save of step 4 or later is on disk, then the
    same command with `--ckpt_path last`: the final weights equal an uninterrupted run's bit for bit (CPU). Three
    batches an epoch, so the saves of steps 2 and 4 fall in the middle of an epoch."""
    steps, args = 40, ["--report.enabled", "false", "--data.samples_per_epoch", "12"]
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    command = [sys.executable, "-m", "genomenet"]
    run = subprocess.run([*command, *tiny_fit_args(straight, steps), *args], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]

    killed = subprocess.Popen([*command, *tiny_fit_args(resumed, steps), *args], cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while max(saved_steps(resumed / "checkpoints"), default=0) < 4:
            assert killed.poll() is None, "the run ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint of step 4 within 300 s"
            time.sleep(0.02)
        killed.kill()  # SIGKILL
    finally:
        killed.kill()
        killed.wait(timeout=60)
    assert killed.returncode == -signal.SIGKILL
    # last.ckpt is written just after each periodic checkpoint: the kill may land between the two (it then holds 2)
    interrupted_at = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"]
    assert 2 <= interrupted_at < steps and max(saved_steps(resumed / "checkpoints")) < steps, "killed after training"

    rerun = subprocess.run([*command, *tiny_fit_args(resumed, steps), *args, "--ckpt_path", "last"], cwd=REPO,
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == steps
    a, b = final_weights(straight / "checkpoints" / "last.ckpt"), final_weights(resumed / "checkpoints" / "last.ckpt")
    assert a.keys() == b.keys()
    assert [name for name in a if not torch.equal(a[name], b[name])] == []


def test_a_rerun_into_the_same_folder_replaces_last(tmp_path: Path) -> None:
    args = ["--report.enabled", "false"]
    assert main(tiny_fit_args(tmp_path, steps=4) + args) == 0
    assert main(tiny_fit_args(tmp_path, steps=2) + args) == 0
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2
    assert not list((tmp_path / "checkpoints").glob("last-v*.ckpt"))


def test_csv_and_tensorboard_logs_of_one_run_share_its_version_folder(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    (logs / "quickstart" / "version_0").mkdir(parents=True)   # an earlier run's (the config names its logs)
    args = ["--report.enabled", "false", "--trainer.logger", loggers(logs)]
    assert main(tiny_fit_args(tmp_path, steps=2) + args) == 0
    run = logs / "quickstart" / "version_1"
    assert (run / "metrics.csv").is_file() and list(run.glob("events.out.tfevents.*"))
    assert sorted(p.name for p in (logs / "quickstart").iterdir()) == ["version_0", "version_1"]
