"""LP-FT: a head started from a linear probe gives the probe's predictions before any training step, its confidence
temperature-scaled on the validation windows."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression

from genomenet.baselines.kmer import C_GRID, logistic_regression, predict_probs, sklearn_targets
from genomenet.data.tokenizers import make_tokenizer
from genomenet.downstream.regions import stratified_subset
from genomenet.errors import ConfigError
from genomenet.model.heads import RegionClassifierNet, probabilities
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.training.finetune import RegionClassifier
from genomenet.training.probe_init import head_from_probe, linear_weights, temperature


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(1, keepdims=True))
    return shifted / shifted.sum(1, keepdims=True)


def labelled(kind: str, n: int, classes: int, rng) -> np.ndarray:
    if kind == "multilabel":
        return (rng.random((n, classes)) < 0.4).astype(np.float32)
    return rng.integers(0, 2 if kind == "binary" else classes, (n, 1)).astype(np.float32)


@pytest.mark.parametrize(("kind", "classes"), [("binary", 2), ("multiclass", 3), ("multiclass", 2), ("multilabel", 3)])
def test_head_weights_reproduce_the_pipelines_probabilities(kind: str, classes: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(3.0, 2.0, (200, 6)) * rng.uniform(0.1, 10, 6)   # features far from standardised
    y = labelled(kind, 200, classes, rng)
    pipeline = logistic_regression(kind, 0.5).fit(x, sklearn_targets(kind, y))
    outputs = 1 if kind == "binary" else classes
    weight, bias = linear_weights(pipeline[-1], kind, outputs)
    logits = torch.as_tensor(pipeline[0].transform(x) @ weight.T + bias)
    expected = predict_probs(kind, pipeline, x, classes)
    np.testing.assert_allclose(probabilities(logits, kind).numpy(), expected, atol=1e-8)


def tiny_classifier_and_data() -> tuple[RegionClassifierNet, dict, SimpleNamespace, dict]:
    """A 3-class region classifier on a 1-layer causal LongNet, random windows, and their frozen features."""
    tokenizer = make_tokenizer(1)
    torch.manual_seed(0)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=16, n_heads=2, segment_lengths=[16, 32],
                        dilation_rates=[1, 2])
    net = RegionClassifierNet(LongNet(cfg, causal=True), 3, "mean", tokenizer.pad_id, pool_over="region",
                              strands="both", reverse_complement_ids=tokenizer.reverse_complement_ids)
    rng = np.random.default_rng(1)
    split = {s: SimpleNamespace(tokens=rng.integers(0, 4, (n, 32)), spans=np.tile([[14, 18]], (n, 1)),
                                targets=rng.integers(0, 3, (n, 1)).astype(np.float32), regions=[None] * n)
             for s, n in (("train", 60), ("val", 30))}
    data = SimpleNamespace(labels=SimpleNamespace(kind="multiclass"), splits=split,
                           window_tokens=lambda s: split[s].tokens, window_spans=lambda s: split[s].spans)
    net.eval()
    with torch.no_grad():
        feats = {s: net.features(torch.from_numpy(split[s].tokens), torch.from_numpy(split[s].spans)).numpy()
                 for s in split}
    return net, split, data, feats


def test_the_head_starts_at_the_probe_fitted_on_the_frozen_features() -> None:
    net, split, data, feats = tiny_classifier_and_data()
    # the probe, fitted independently on the same frozen features
    # for each C a logistic regression; the head starts from the one whose validation cross-entropy, at its best
    # temperature, is lowest
    rows, val_targets = stratified_subset(split["train"].targets, 40), split["val"].targets[:, 0].astype(int)

    def scaled_loss(probs: np.ndarray) -> float:
        return min(float(-np.mean(np.log(softmax(np.log(probs) / t)[np.arange(30), val_targets])))
                   for t in np.geomspace(0.1, 100, 61))

    train_targets = split["train"].targets[rows, 0].astype(int)
    probes = [logistic_regression("multiclass", c).fit(feats["train"][rows], train_targets) for c in C_GRID]
    probe = min(probes, key=lambda p: scaled_loss(predict_probs("multiclass", p, feats["val"], 3)))
    expected = predict_probs("multiclass", probe, feats["val"], 3)

    net.train()
    head_from_probe(net, data, max_windows=40, batch_size=16)
    assert net.training   # left as it was
    net.eval()
    with torch.no_grad():
        got = probabilities(net(torch.from_numpy(split["val"].tokens), torch.from_numpy(split["val"].spans)),
                            "multiclass").numpy()
    # the head is the probe divided by one temperature T, read off its weights ...
    ratio = probe[-1].coef_ / net.head.weight.detach().numpy()
    t = float(ratio.mean())
    np.testing.assert_allclose(ratio, t, rtol=1e-4)
    np.testing.assert_allclose(got, softmax(np.log(expected) / t), atol=1e-5)
    assert (got.argmax(1) == expected.argmax(1)).all()

    # ... at a minimum of the validation cross-entropy (neighbours on the grid, 10^0.05 apart, inside its ends)
    def cross_entropy(temp: float) -> float:
        return float(-np.mean(np.log(softmax(np.log(expected) / temp)[np.arange(30), val_targets])))

    others = [1.0] + [t * f for f in (10**0.05, 10**-0.05) if 0.1 <= t * f <= 100]
    assert cross_entropy(t) <= min(cross_entropy(o) for o in others) + 1e-9


def test_a_fixed_c_starts_the_head_at_that_probe() -> None:
    net, split, data, feats = tiny_classifier_and_data()
    rows = stratified_subset(split["train"].targets, 40)
    gentle = logistic_regression("multiclass", 0.01).fit(feats["train"][rows], split["train"].targets[rows, 0])
    assert "C=0.01," in head_from_probe(net, data, max_windows=40, batch_size=16, c_grid=(0.01,))
    ratio = gentle[-1].coef_ / net.head.weight.detach().numpy()   # that probe over one temperature
    np.testing.assert_allclose(ratio, ratio.mean(), rtol=1e-4)


@pytest.mark.parametrize("kind", ["multiclass", "binary", "multilabel"])
def test_temperature_undoes_an_overconfident_models_scaling(kind: str) -> None:
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 1.5, (20_000, 1 if kind == "binary" else 4))
    if kind == "multiclass":
        cumulative = softmax(true_logits).cumsum(1)
        targets = (rng.random((20_000, 1)) > cumulative).sum(1, keepdims=True).astype(float)
    else:
        targets = (rng.random(true_logits.shape) < 1 / (1 + np.exp(-true_logits))).astype(float)
    assert temperature(5.0 * true_logits, targets, kind) == pytest.approx(5.0, rel=0.15)
    assert temperature(true_logits, targets, kind) == pytest.approx(1.0, rel=0.15)


def test_head_dropout_drops_a_probe_started_feature_to_its_mean() -> None:
    tokenizer = make_tokenizer(1)
    cfg = LongNetConfig(vocab_size=tokenizer.vocab_size, n_layers=1, d_model=8, n_heads=2, segment_lengths=[16],
                        dilation_rates=[1])
    net = RegionClassifierNet(LongNet(cfg, causal=True), 1, "mean", tokenizer.pad_id, dropout=1.0)
    net.feature_mean.fill_(5.0)
    net.feature_scale.fill_(0.01)
    net.train()
    ids = torch.randint(0, 4, (4, 16))
    with torch.no_grad():
        logits = net(ids)
    # every feature dropped: the head sees the standardised mean, 0, so the logit is the bias alone
    assert torch.allclose(logits, net.head.bias.expand_as(logits))


@pytest.mark.parametrize("c", [0.0, -1.0])
def test_a_starting_probe_c_must_be_positive(c: float) -> None:
    with pytest.raises(ConfigError, match="head_init_c"):
        RegionClassifier(head_init="probe", head_init_c=c)


def test_shared_scaling_fits_the_probe_on_features_over_one_scale() -> None:
    net, split, data, feats = tiny_classifier_and_data()
    rows = stratified_subset(split["train"].targets, 40)
    train = feats["train"][rows]
    shift, scale = train.mean(0), train.std(0).mean()   # one scale for every dimension
    probe = LogisticRegression(C=1.0, max_iter=2000, random_state=0).fit((train - shift) / scale,
                                                                          split["train"].targets[rows, 0])
    head_from_probe(net, data, max_windows=40, batch_size=16, c_grid=(1.0,), scaling="shared")
    np.testing.assert_allclose(net.feature_scale.numpy(), scale, rtol=1e-5)
    np.testing.assert_allclose(net.feature_mean.numpy(), shift, rtol=1e-4, atol=1e-6)
    weight = net.head.weight.detach().numpy().astype(np.float64)   # that probe over one temperature t
    t = float(np.median(probe.coef_ / weight))
    np.testing.assert_allclose(weight * t, probe.coef_, atol=1e-4 * np.abs(probe.coef_).max())
