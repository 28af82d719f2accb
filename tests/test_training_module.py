"""GenomeLM: vocabulary from the tokenizer, both objectives train, bits per base per nucleotide for k-mers."""

from __future__ import annotations

import math

import pytest
import torch

from genomenet.errors import ConfigError
from genomenet.model.longnet import LongNetConfig
from genomenet.model.objectives import ObjectiveConfig
from genomenet.model.pretrained import export_model
from genomenet.training.module import GenomeLM, OptimizerConfig, schedule_steps, warmup_cosine

TINY = LongNetConfig(n_layers=1, d_model=16, n_heads=2, attention="dense")


def test_vocabulary_comes_from_the_tokenizer_of_the_kmer_size() -> None:
    assert GenomeLM(TINY).model.cfg.vocab_size == 10
    assert GenomeLM(TINY, kmer_size=3).model.cfg.vocab_size == 4**3 + 6


@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_each_objective_gives_a_finite_loss_with_gradients(kind: str) -> None:
    torch.manual_seed(0)  # the masked count is random: about 15% of 400 tokens
    module = GenomeLM(TINY, ObjectiveConfig(kind))
    ids = torch.randint(0, 4, (2, 200))
    nll, count = module.nll(ids)
    if kind == "causal":
        assert count == 2 * 199  # every token after the first
    else:
        assert 0 < count < 2 * 200 * 0.3  # about 15% of them
    (nll / count).backward()
    assert all(p.grad is not None for p in module.model.parameters())


def test_a_uniform_model_costs_log2_of_the_vocabulary_per_token_and_a_kth_of_it_per_base() -> None:
    module = GenomeLM(TINY, kmer_size=2)
    torch.nn.init.zeros_(module.model.lm_head.weight)  # tied: zero embeddings too -> uniform logits
    ids = torch.randint(0, 16, (1, 50))
    nll, count = (t.detach() for t in module.nll(ids))
    per_token_bits = float(nll / count) / math.log(2)
    assert per_token_bits == pytest.approx(math.log2(22), rel=1e-5)
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    logged: dict[str, float] = {}
    module.log_metrics("val", nll, count)
    assert logged["val/bits_per_base"] == pytest.approx(math.log2(22) / 2, rel=1e-5)
    assert logged["val/perplexity"] == pytest.approx(22, rel=1e-4)


def test_a_sequence_parallel_size_below_one_is_refused() -> None:
    with pytest.raises(ConfigError, match="sequence_parallel_size"):
        GenomeLM(TINY, sequence_parallel_size=0)


def test_learning_rate_warms_up_linearly_then_decays_to_the_floor() -> None:
    schedule = warmup_cosine(OptimizerConfig(warmup_steps=10, min_lr_ratio=0.1), total=110)
    assert schedule(0) == pytest.approx(0.1) and schedule(9) == pytest.approx(1.0)
    assert schedule(60) == pytest.approx(0.55) and schedule(110) == pytest.approx(0.1)


def small_backbone(**changes) -> LongNetConfig:
    shape = dict(n_layers=2, d_model=32, n_heads=4, segment_lengths=[8, 32], dilation_rates=[1, 4])
    return LongNetConfig(**{**shape, **changes})


def test_init_weights_starts_from_an_exported_model_even_with_other_segments(tmp_path) -> None:
    trained = GenomeLM(small_backbone())
    export_model(trained.model, trained.info, tmp_path / "model")
    longer = GenomeLM(small_backbone(segment_lengths=[8, 32, 128], dilation_rates=[1, 4, 16]),
                      init_weights=str(tmp_path / "model"))
    for name, tensor in trained.model.state_dict().items():
        torch.testing.assert_close(longer.model.state_dict()[name], tensor, rtol=0, atol=0)
    assert not torch.equal(GenomeLM(small_backbone()).model.embed.weight, trained.model.embed.weight)


@pytest.mark.parametrize(
    ("changes", "kmer_size", "named"),
    [({"d_model": 64}, 1, "needs"), ({"n_layers": 3}, 1, "blocks.2"), ({}, 3, "3-mers: set --data.kmer_size 1")],
)
def test_init_weights_that_do_not_fit_the_backbone_are_a_config_error(tmp_path, changes, kmer_size, named) -> None:
    trained = GenomeLM(small_backbone())
    export_model(trained.model, trained.info, tmp_path / "model")
    with pytest.raises(ConfigError, match=named):
        GenomeLM(small_backbone(**changes), kmer_size=kmer_size, init_weights=str(tmp_path / "model"))


def test_init_weights_from_a_missing_path_is_a_config_error(tmp_path) -> None:
    with pytest.raises(ConfigError, match="init_weights.*nowhere"):
        GenomeLM(small_backbone(), init_weights=str(tmp_path / "nowhere"))


def test_the_schedule_spans_decay_steps_else_max_steps_else_the_estimate() -> None:
    def never() -> int:
        raise AssertionError("the estimate is only asked for without max_steps")

    assert schedule_steps(OptimizerConfig(decay_steps=1300), max_steps=1000, estimated_steps=never) == 1300
    assert schedule_steps(OptimizerConfig(), max_steps=1000, estimated_steps=never) == 1000
    assert schedule_steps(OptimizerConfig(), max_steps=-1, estimated_steps=lambda: 77) == 77
    with pytest.raises(ConfigError, match="decay_steps"):
        schedule_steps(OptimizerConfig(decay_steps=0), max_steps=10, estimated_steps=never)
