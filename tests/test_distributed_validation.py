"""Validation over several ranks counts each held-out window once: its loss equals one process's, also when the
ranks get different numbers of batches, plain DDP and data x sequence parallel alike."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from lightning.pytorch.strategies import DDPStrategy

from genomenet.data.datamodule import GenomeDataModule
from genomenet.model.longnet import LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.training.module import GenomeLM
from genomenet.training.strategy import SequenceParallelStrategy

CONTEXT = 1536  # the last 10% of lambda phage (4,850 bases) holds 3 tiles: ranks get 2 and 1 batches


def tiny_model(sequence_parallel_size: int) -> GenomeLM:
    torch.manual_seed(0)
    backbone = LongNetConfig(n_layers=1, d_model=16, n_heads=2, segment_lengths=[256, 768, 1536],
                             dilation_rates=[1, 2, 4])
    return GenomeLM(backbone, ObjectiveConfig("causal"), sequence_parallel_size=sequence_parallel_size)


def validate(cache_dir, data_parallel_size: int, sequence_parallel_size: int = 1) -> dict[str, float]:
    devices = data_parallel_size * sequence_parallel_size
    strategy = "auto"
    if sequence_parallel_size > 1:
        strategy = SequenceParallelStrategy(sequence_parallel_size, start_method="spawn")
    elif devices > 1:
        strategy = DDPStrategy(start_method="spawn")
    data = GenomeDataModule("data/lambda_phage.fa.gz", context_length=CONTEXT, batch_size=1, val_fraction=0.1,
                            cache_dir=str(cache_dir), sequence_parallel_size=sequence_parallel_size)
    trainer = Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False, enable_progress_bar=False,
                      enable_model_summary=False)
    (metrics,) = trainer.validate(tiny_model(sequence_parallel_size), data)
    return metrics


@pytest.mark.slow
def test_two_process_validation_equals_one_process_with_an_odd_number_of_windows(tmp_path):
    data = GenomeDataModule("data/lambda_phage.fa.gz", context_length=CONTEXT, val_fraction=0.1,
                            cache_dir=str(tmp_path))
    assert len(data.dataset("val")) == 3
    single = validate(tmp_path, 1)
    ddp = validate(tmp_path, 2)
    assert ddp["val/loss"] == pytest.approx(single["val/loss"], rel=2e-6)
    assert ddp["val/bits_per_base"] == pytest.approx(single["val/bits_per_base"], rel=2e-6)


@pytest.mark.slow
def test_data_by_sequence_parallel_validation_with_uneven_batches_equals_one_process(tmp_path):
    """2 x 2 mesh: sequence groups run 2 and 1 steps, each with collectives inside the group; no deadlock."""
    single = validate(tmp_path, 1)
    mesh = validate(tmp_path, 2, sequence_parallel_size=2)
    assert mesh["val/loss"] == pytest.approx(single["val/loss"], rel=2e-6)
