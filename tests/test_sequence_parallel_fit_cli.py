"""`genomenet fit` with data.sequence_parallel_size 2 under torchrun (2 gloo processes): one checkpoint and one
exported model, the final `model: PATH` line printed once; `genomenet validate` of that checkpoint under torchrun
says its figures are the distributed validation metrics (not "use genomenet validate")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_training_fit import REPO, tiny_fit_args

from genomenet.model.pretrained import load_pretrained


@pytest.mark.slow
def test_sequence_parallel_fit_under_torchrun_exports_the_model_once(tmp_path: Path) -> None:
    args = [*tiny_fit_args(tmp_path, 2), "--data.sequence_parallel_size", "2", "--trainer.devices", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "genomenet", *args],
        capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"model: {tmp_path / 'model'}"
    assert proc.stdout.count("model: ") == 1 and proc.stdout.count("held-out report skipped") == 1
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert load_pretrained(tmp_path / "model").info.context_length == 128

    validate = ["validate", *args[1:], "--ckpt_path", str(tmp_path / "checkpoints" / "last.ckpt")]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "genomenet", *validate],
        capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("held-out report skipped")]
    assert len(skipped) == 1 and skipped[0].endswith("the distributed validation metrics above are this run's figures")


def test_torchrun_with_fewer_processes_than_trainer_devices_is_one_line(tmp_path: Path) -> None:
    """long_context_sp.yaml says trainer.devices 4: launched by `torchrun --nproc_per_node 2` as it is, Lightning's
    ValueError was a traceback."""
    args = [*tiny_fit_args(tmp_path, 1), "--data.sequence_parallel_size", "2", "--trainer.devices", "2"]
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "1", "-m", "genomenet", *args],
        capture_output=True, text=True, cwd=REPO, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if "Error" in line or line.startswith("genomenet: error")]
    assert errors[0].startswith("genomenet: error: trainer.devices: You set `devices=2`"), proc.stderr[-2000:]
    assert proc.stderr.count("Traceback") == 1, proc.stderr[-2000:]   # torchrun's own report of the failed process
