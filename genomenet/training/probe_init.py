"""Start a region classifier's head from a linear probe (LP-FT: Kumar et al., ICLR 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution").

A randomly initialised head sends large, noisy gradients into the pre-trained backbone during the first steps of full
fine-tuning; fitting logistic regression on the frozen features first and copying it into the head starts fine-tuning
from the probe's solution, so the backbone only has to improve on it; its logits are first divided by the temperature
that calibrates them on the validation windows (`temperature`). The probe's standardisation becomes the
net's feature standardisation (`feature_mean`, `feature_scale`, kept in exports), so head dropout drops a feature to its
training mean rather than to zero (which, with weights fitted to standardised features, would swing the logits).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.preprocessing import StandardScaler

from genomenet.baselines.kmer import C_GRID, logistic_regression, sklearn_targets
from genomenet.downstream.regions import stratified_subset, window_outputs
from genomenet.model.heads import RegionClassifierNet


def linear_weights(model, kind: str, num_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, d) weights and (outputs,) biases equal to a fitted logistic regression's logits on its inputs
    (binary: the positive class's logit; multi-class: one logit per class, softmax equal to the model's; multi-label:
    one per class)."""
    if kind == "multilabel":
        coef = np.concatenate([m.coef_ for m in model.estimators_])
        bias = np.concatenate([m.intercept_ for m in model.estimators_])
    else:
        coef, bias = model.coef_, model.intercept_
    if kind != "multiclass":
        return coef, bias
    weights, biases = np.zeros((num_outputs, coef.shape[1])), np.zeros(num_outputs)
    classes = np.asarray(model.classes_, dtype=int)
    if len(classes) == 2 and coef.shape[0] == 1:   # scikit-learn keeps one row for two classes
        weights[classes[1]], biases[classes[1]] = coef[0], bias[0]
    else:
        weights[classes], biases[classes] = coef, bias
    return weights, biases


def calibrate(logits: np.ndarray, targets: np.ndarray, kind: str) -> tuple[float, float]:
    """(T, loss): the T in [0.1, 100] (a log grid) that minimises the cross-entropy of logits / T on these targets,
    and that cross-entropy: temperature scaling (Guo et al., ICML 2017), which keeps every prediction (multi-class:
    the ranking of the classes; binary and multi-label: each logit's sign) and fixes its confidence."""
    z, y = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(targets, dtype=torch.float64)
    grid = np.geomspace(0.1, 100.0, 61)
    if kind == "multiclass":
        losses = [float(F.cross_entropy(z / t, y[:, 0].long())) for t in grid]
    else:
        losses = [float(F.binary_cross_entropy_with_logits(z / t, y)) for t in grid]
    best = int(np.argmin(losses))
    return float(grid[best]), losses[best]


def temperature(logits: np.ndarray, targets: np.ndarray, kind: str) -> float:
    """The temperature of `calibrate`."""
    return calibrate(logits, targets, kind)[0]


@torch.no_grad()
def head_from_probe(net: RegionClassifierNet, datamodule, max_windows: int, batch_size: int,
                    c_grid: tuple[float, ...] = C_GRID, scaling: str = "per_feature") -> str:
    """Fit logistic regression on the net's current pooled features of at most `max_windows` training windows for
    each C of `c_grid` (the report's grid by default; one value fixes it), on features standardised per dimension
    (`scaling="per_feature"`, the report's probe) or centred and divided by one scale shared by every dimension
    (`"shared"`: low-variance dimensions then cost the probe large weights, so it leans on the directions along which
    the features actually vary, and small changes in the backbone's states move its logits less), temperature-scale
    each on the validation windows, keep the one whose scaled validation cross-entropy is lowest, and copy it into
    `net.head`. Returns what was chosen, for the log.

    The temperature matters: a probe fitted on few windows can be overconfident (large weights on standardised
    features whose spread across windows is a few hundredths of their size), and fine-tuning would start from a loss
    above a uniform guess's, with logits so sensitive to the backbone that its first steps send the loss far higher.
    Dividing the logits by T keeps the probe's predictions and starts from calibrated ones. C is chosen by that
    calibrated loss, not by validation accuracy: on a few windows accuracy ties or favours a nearly unregularised probe
    by a window or two, and one that separates its training windows leaves fine-tuning no gradient to learn from
    (tests/test_region_finetune.py's planted motif: 64 windows, C = 100 chosen by accuracy, fine-tuned 0.84 against
    above 0.9). The region data module guarantees validation windows."""
    kind, splits = datamodule.labels.kind, datamodule.splits
    train = np.arange(len(splits["train"].regions))
    if len(train) > max_windows:
        train = stratified_subset(splits["train"].targets, max_windows)
    was_training = net.training
    net.eval()
    feats = {s: window_outputs(net, datamodule.window_tokens(s)[rows], datamodule.window_spans(s)[rows], "features",
                               batch_size=batch_size, desc=f"probe features ({s}) for the head")
             for s, rows in (("train", train), ("val", np.arange(len(splits["val"].regions))))}
    scaler = StandardScaler().fit(feats["train"])
    mean, scale = scaler.mean_, scaler.scale_
    if scaling == "shared":
        scale = np.full_like(scale, scale.mean())
    z = {s: (f - mean) / scale for s, f in feats.items()}
    y_train, fits = sklearn_targets(kind, splits["train"].targets[train]), []
    for c in c_grid:
        probe = logistic_regression(kind, c)[-1].fit(z["train"], y_train)
        weight, bias = linear_weights(probe, kind, net.head.out_features)
        logits = z["val"] @ weight.T + bias
        fits.append((*calibrate(logits, splits["val"].targets, kind), c, weight, bias))
    t, loss, c, weight, bias = min(fits, key=lambda fit: fit[1])
    for target, value in ((net.feature_mean, mean), (net.feature_scale, scale),
                          (net.head.weight, weight / t), (net.head.bias, bias / t)):
        target.copy_(torch.as_tensor(value, dtype=target.dtype))
    net.train(was_training)
    return (f"C={c}, temperature {t:.3g} (validation loss {loss:.3f}), {len(train)} training windows, "
            f"{scaling.replace('_', ' ')} scaling")
