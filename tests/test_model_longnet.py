"""The backbone: causal models never look ahead, masked models look both ways, both attention paths agree."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from genomenet.errors import ConfigError
from genomenet.model.longnet import LongNet, LongNetConfig

ATTENTION = ["dense", "dilated"]


def tiny(attention: str, **overrides) -> LongNetConfig:
    fields = dict(vocab_size=10, n_layers=2, d_model=32, n_heads=4, attention=attention,
                  segment_lengths=[8, 16, 64], dilation_rates=[1, 2, 4])
    return LongNetConfig(**(fields | overrides))


@pytest.mark.parametrize("attention", ATTENTION)
def test_causal_lm_logits_at_t_do_not_change_when_a_later_token_changes(attention: str) -> None:
    model = LongNet(tiny(attention), causal=True).eval()
    ids = torch.randint(0, 4, (2, 50))
    t = int(torch.randint(5, 45, ()))
    changed = ids.clone()
    changed[:, t + 1] = (ids[:, t + 1] + 1) % 4
    before, after = model(ids), model(changed)
    torch.testing.assert_close(before[:, : t + 1], after[:, : t + 1])
    assert not torch.allclose(before[:, t + 1 :], after[:, t + 1 :])


@pytest.mark.parametrize("attention", ATTENTION)
def test_masked_lm_logits_at_t_depend_on_later_tokens(attention: str) -> None:
    model = LongNet(tiny(attention), causal=False).eval()
    ids = torch.randint(0, 4, (1, 40))
    changed = ids.clone()
    changed[:, 30] = (ids[:, 30] + 1) % 4
    assert not torch.allclose(model(ids)[:, 29], model(changed)[:, 29])


def test_dilated_model_with_one_whole_segment_and_no_dilation_equals_the_dense_model() -> None:
    dense = LongNet(tiny("dense", segment_lengths=[64], dilation_rates=[1])).eval()
    dilated = LongNet(tiny("dilated", segment_lengths=[64], dilation_rates=[1])).eval()
    dilated.load_state_dict(dense.state_dict())
    ids = torch.randint(0, 4, (2, 37))
    torch.testing.assert_close(dilated(ids), dense(ids))


@pytest.mark.parametrize("attention", ATTENTION)
def test_padding_keys_do_not_change_the_outputs_of_real_tokens(attention: str) -> None:
    model = LongNet(tiny(attention), causal=False).eval()
    ids = torch.randint(0, 4, (1, 30))
    padded = torch.cat([ids, torch.full((1, 10), 5)], dim=1)
    mask = padded == 5
    torch.testing.assert_close(model(padded, key_padding_mask=mask)[:, :30], model(ids), atol=1e-5, rtol=1e-5)


def test_positions_shift_rotary_so_relative_offsets_matter_not_absolute_ones() -> None:
    model = LongNet(tiny("dense"), causal=True).eval()
    ids = torch.randint(0, 4, (1, 20))
    shifted = model(ids, positions=torch.arange(20) + 1000)
    torch.testing.assert_close(shifted, model(ids), atol=1e-4, rtol=1e-4)


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    cfg = tiny("dense")
    plain, checkpointed = LongNet(cfg), LongNet(replace(cfg, gradient_checkpointing=True))
    checkpointed.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 4, (2, 24))
    for model in (plain, checkpointed):
        model(ids).logsumexp(-1).sum().backward()
    for (name, a), b in zip(plain.named_parameters(), checkpointed.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, msg=name)


def test_tied_embedding_is_the_lm_head() -> None:
    model = LongNet(tiny("dense"))
    assert model.lm_head.weight is model.embed.weight


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        (dict(segment_lengths=[8, 16], dilation_rates=[1]), "dilation_rates"),
        (dict(d_model=30, n_heads=4), "n_heads"),
        (dict(n_layers=0), "n_layers"),
        (dict(segment_lengths=[0], dilation_rates=[1]), "segment_lengths"),
    ],
)
def test_impossible_shapes_are_config_errors_that_name_the_field(overrides: dict, names: str) -> None:
    with pytest.raises(ConfigError, match=names):
        tiny("dense", **overrides)


def sliding(**overrides) -> LongNetConfig:
    """One layer, one segment branch of 8, and a sliding window of 6."""
    return tiny("dilated", **({"n_layers": 1, "segment_lengths": [8], "dilation_rates": [1], "sliding_window": 6}
                              | overrides))


def test_sliding_window_reaches_across_a_segment_boundary_and_no_further() -> None:
    """Position 9 sits in the second segment of 8: only the window (positions 3..9) links it to position 7, and
    nothing links it to position 2."""
    model = LongNet(sliding(), causal=True).eval()
    without = LongNet(sliding(sliding_window=0), causal=True).eval()
    without.load_state_dict(model.state_dict())
    ids = torch.randint(0, 4, (1, 16))
    near, far = ids.clone(), ids.clone()
    near[0, 7] = (ids[0, 7] + 1) % 4
    far[0, 2] = (ids[0, 2] + 1) % 4
    assert not torch.allclose(model(ids)[0, 9], model(near)[0, 9])
    torch.testing.assert_close(without(ids)[0, 9], without(near)[0, 9])
    torch.testing.assert_close(model(ids)[0, 9], model(far)[0, 9])


def test_sliding_window_model_is_causal_and_round_trips_its_config() -> None:
    cfg = sliding(n_layers=2)
    model = LongNet(cfg, causal=True).eval()
    ids = torch.randint(0, 4, (2, 30))
    changed = ids.clone()
    changed[:, 20] = (ids[:, 20] + 1) % 4
    torch.testing.assert_close(model(ids)[:, :20], model(changed)[:, :20])
    assert LongNetConfig(**cfg.to_dict()) == cfg
    assert not model.can_extend   # no cached-rows path: inference runs whole windows


def test_sliding_window_needs_a_causal_model_and_a_non_negative_width() -> None:
    with pytest.raises(ConfigError, match="sliding_window"):
        LongNet(sliding(), causal=False)
    with pytest.raises(ConfigError, match="sliding_window"):
        sliding(sliding_window=-2)


def test_sequence_parallelism_refuses_a_sliding_window_model() -> None:
    from genomenet.attention.module import apply_sequence_parallel

    model = LongNet(sliding(), causal=True)
    with pytest.raises(ValueError, match="sliding_window to 0"):
        apply_sequence_parallel(model, group=object())
    assert apply_sequence_parallel(model, None) == 1
