"""Held-out evaluation: the same targets at every context length, tables and plots, atomic checkpoint files."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.training.callbacks import AtomicCheckpointIO
from genomenet.training.evaluation import context_curve, context_table, save_context_plot, window_nll
from genomenet.training.report import max_markov_order

CFG = LongNetConfig(vocab_size=10, n_layers=1, d_model=16, n_heads=2, attention="dense")


def test_window_nll_scores_every_real_base_after_the_first_token() -> None:
    model = LongNet(CFG)
    windows = torch.randint(0, 4, (3, 20))
    windows[0, 5] = 4  # an N is never a target
    nll, count = window_nll(model, windows, n_id=4)
    assert count == 3 * 19 - 1
    assert 0 < nll / count < 2 * math.log(10)


def test_context_curve_scores_the_same_last_tokens_with_more_context_each_time() -> None:
    model = LongNet(CFG)
    windows = torch.randint(0, 4, (2, 64))
    curve = context_curve(model, windows, n_id=4, contexts=[1, 8, 48, 56, 1000], score_tokens=16)
    assert list(curve) == [1, 8, 48]  # 56 + 16 and 1000 + 16 do not fit in 64 tokens
    nll, count = window_nll(model, windows[:, -16 - 48 :], n_id=4, first=48)
    assert count == 2 * 16
    assert curve[48] == pytest.approx(nll / (count * math.log(2)))


def test_context_table_and_plot_are_written(tmp_path: Path) -> None:
    curve = {16: 1.95, 256: 1.90}
    table = context_table(curve, bases_per_token=2)
    assert "512" in table and "1.9000" in table
    png = save_context_plot(curve, tmp_path / "curve.png", baseline=1.93)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markov_order_is_capped_so_contexts_fit_in_64_bit_codes() -> None:
    assert max_markov_order(4, 12) == 12
    assert 4096 ** (max_markov_order(4096, 12) + 1) < 2**62


def test_checkpoint_write_is_atomic_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    io, path = AtomicCheckpointIO(), tmp_path / "last.ckpt"
    io.save_checkpoint({"step": 1, "w": torch.ones(3)}, path)
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]

    class Unsaveable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        io.save_checkpoint({"step": 2, "w": Unsaveable()}, path)
    assert torch.load(path, weights_only=True)["step"] == 1  # the old checkpoint is whole
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]
