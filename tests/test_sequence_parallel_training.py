"""Training over a sequence-parallel group equals training on one device on the whole sequence."""

import pytest
import torch
from lightning.pytorch import Trainer

from genomenet.data.datamodule import GenomeDataModule
from genomenet.model.longnet import LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.training.module import GenomeLM, OptimizerConfig
from genomenet.training.strategy import SequenceParallelStrategy

STEPS = 2


def tiny_model(sequence_parallel_size: int) -> GenomeLM:
    torch.manual_seed(0)
    backbone = LongNetConfig(n_layers=2, d_model=32, n_heads=4, segment_lengths=[32, 64, 128],
                             dilation_rates=[1, 2, 4])
    optimizer = OptimizerConfig(name="sgd", lr=0.5, weight_decay=0.0, warmup_steps=0, min_lr_ratio=1.0)
    return GenomeLM(backbone, ObjectiveConfig("causal"), optimizer, sequence_parallel_size=sequence_parallel_size)


def lambda_phage(sequence_parallel_size: int, cache_dir) -> GenomeDataModule:
    return GenomeDataModule("data/lambda_phage.fa.gz", context_length=128, batch_size=2, val_fraction=0.1,
                            samples_per_epoch=8, seed=3, cache_dir=str(cache_dir),
                            sequence_parallel_size=sequence_parallel_size)


def train(sequence_parallel_size: int, cache_dir, data_parallel_size: int = 1) -> GenomeLM:
    model = tiny_model(sequence_parallel_size)
    devices = data_parallel_size * sequence_parallel_size
    strategy = "auto"
    if devices > 1:
        strategy = SequenceParallelStrategy(sequence_parallel_size, start_method="spawn")
    trainer = Trainer(accelerator="cpu", devices=devices, strategy=strategy, max_steps=STEPS,
                      limit_val_batches=0, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                      enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, lambda_phage(sequence_parallel_size, cache_dir))
    return model   # with spawn, rank 0's trained weights are loaded back into this process's model


@pytest.mark.slow
def test_sequence_parallel_training_steps_equal_single_device_training(tmp_path):
    initial = {k: v.clone() for k, v in tiny_model(1).state_dict().items()}
    single = train(1, tmp_path).state_dict()
    split = train(2, tmp_path).state_dict()
    assert any(not torch.equal(initial[k], single[k]) for k in initial), "training changed nothing"
    for name in single:
        torch.testing.assert_close(split[name], single[name], rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


@pytest.mark.slow
def test_data_by_sequence_mesh_training_equals_plain_data_parallel_training(tmp_path):
    """2 x 2 mesh against 2-way DDP: the same windows per replica, so the same steps if gradients reduce right."""
    plain = train(1, tmp_path, data_parallel_size=2).state_dict()
    mesh = train(2, tmp_path, data_parallel_size=2).state_dict()
    for name in plain:
        torch.testing.assert_close(mesh[name], plain[name], rtol=1e-4, atol=1e-6, msg=lambda m, n=name: f"{n}: {m}")


def test_strategy_refuses_a_group_size_that_does_not_divide_the_ranks():
    with pytest.raises(ValueError, match="must be >= 1"):
        SequenceParallelStrategy(0)
