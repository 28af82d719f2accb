"""Held-out evaluation: the same targets at every context length, tables and plots, atomic checkpoint files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from genomenet.evaluation.lm_report import masked_nll, max_markov_order, scoring_device
from genomenet.evaluation.lm_scores import (
    context_curve,
    context_scores,
    context_table,
    save_context_plot,
    target_nll,
    window_nll,
)
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.training.callbacks import AtomicCheckpointIO

CFG = LongNetConfig(vocab_size=10, n_layers=1, d_model=16, n_heads=2, attention="dense")


def test_window_nll_scores_every_real_base_after_the_first_token() -> None:
    torch.manual_seed(0)
    model = LongNet(CFG)
    windows = torch.randint(0, 4, (3, 20))
    windows[0, 5] = 4  # an N is never a target
    nll, count = window_nll(model, windows, n_id=4)
    assert count == 3 * 19 - 1
    assert 0 < nll / count < 2 * math.log(10)


def test_context_curve_scores_the_same_last_tokens_with_more_context_each_time() -> None:
    torch.manual_seed(1)
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


class DeviceCheckingLM(torch.nn.Module):
    """A stand-in causal LM: logits are a lookup table; it fails when a batch is not on its weights' device."""

    causal = True

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = torch.nn.Parameter(table)
        self.seen: list[torch.device] = []

    def forward(self, input_ids: torch.Tensor, **_) -> torch.Tensor:
        assert input_ids.device == self.table.device, f"batch on {input_ids.device}, model on {self.table.device}"
        self.seen.append(input_ids.device)
        return self.table[input_ids]  # (b, n, vocab)


class DeviceCheckingMaskedModule:
    """A stand-in for the Lightning module `masked_nll` scores with: `.model` and `.nll(batch, generator)`."""

    def __init__(self, model: DeviceCheckingLM) -> None:
        self.model = model

    def nll(self, input_ids: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        device = self.model.table.device
        assert input_ids.device == device and generator.device == device
        u = torch.rand(input_ids.shape, generator=generator, device=device)
        return (self.model(input_ids).logsumexp(-1) * (u < 0.5)).sum(), (u < 0.5).sum()


DEVICES = [
    "cpu",
    pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")),
]


@pytest.mark.parametrize("device", DEVICES)
def test_scoring_runs_each_batch_on_the_models_device_and_returns_cpu_results(device: str) -> None:
    gen = torch.Generator().manual_seed(0)
    table = torch.randn(10, 10, generator=gen, dtype=torch.float64).float()
    windows = torch.randint(0, 5, (5, 40), generator=gen)
    reference, model = DeviceCheckingLM(table), DeviceCheckingLM(table).to(device)

    nll = target_nll(model, windows, n_id=4, batch_size=2)
    assert isinstance(nll, np.ndarray) and model.seen == [model.table.device] * 3 and model.seen[0].type == device
    np.testing.assert_allclose(nll, target_nll(reference, windows, n_id=4, batch_size=2), rtol=1e-5)
    assert window_nll(model, windows, n_id=4) == pytest.approx(window_nll(reference, windows, n_id=4), rel=1e-5)
    scores = context_scores(model, windows, n_id=4, contexts=[4, 16], score_tokens=8)
    for c, expected in context_scores(reference, windows, n_id=4, contexts=[4, 16], score_tokens=8).items():
        np.testing.assert_allclose(scores[c], expected, rtol=1e-5)

    total, count = masked_nll(DeviceCheckingMaskedModule(model), windows, batch_size=2)
    assert count > 0 and math.isfinite(total)
    assert scoring_device(DeviceCheckingMaskedModule(model)) == model.table.device


def test_scoring_sends_batches_to_a_model_that_is_not_on_the_cpu() -> None:
    """The CPU-only check that batches follow the model: on the meta device the model sees meta batches (the
    results cannot be copied back from meta, so the run stops there)."""
    model = DeviceCheckingLM(torch.zeros(10, 10, device="meta"))
    windows = torch.randint(0, 4, (3, 12), generator=torch.Generator().manual_seed(1))
    with pytest.raises(NotImplementedError, match="meta"):
        target_nll(model, windows, n_id=4)
    assert model.seen == [torch.device("meta")]


def test_a_report_scores_where_the_module_is_when_no_trainer_ran_it() -> None:
    """Region classifiers have no `.model`: the fallback reads the module's own parameters (the region report scores
    on the trainer's device, here absent)."""
    assert scoring_device(torch.nn.Linear(2, 2, device="meta")) == torch.device("meta")
