"""Start a region classifier's head from a linear probe (LP-FT: Kumar et al., ICLR 2022, "Fine-Tuning can Distort
Pretrained Features and Underperform Out-of-Distribution").

A randomly initialised head sends large, noisy gradients into the pre-trained backbone during the first steps of full
fine-tuning; fitting logistic regression on the frozen features first and copying it into the head starts fine-tuning
from the probe's solution, so the backbone only has to improve on it. The probe's standardisation is folded into the
linear layer: w' = w / sigma, b' = b - w' . mu.
"""

from __future__ import annotations

import numpy as np
import torch

from genomenet.baselines.kmer import choose_and_fit
from genomenet.downstream.regions import stratified_subset, window_outputs
from genomenet.model.heads import RegionClassifierNet


def linear_weights(pipeline, kind: str, num_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """(outputs, d) weights and (outputs,) biases on raw features equal to a fitted StandardScaler + logistic
    regression pipeline's logits (binary: the positive class's logit; multi-class: one logit per class, softmax
    equal to the model's; multi-label: one per class)."""
    scaler, model = pipeline[0], pipeline[-1]
    if kind == "multilabel":
        coef = np.concatenate([m.coef_ for m in model.estimators_])
        bias = np.concatenate([m.intercept_ for m in model.estimators_])
    else:
        coef, bias = model.coef_, model.intercept_
    coef = coef / scaler.scale_
    bias = bias - coef @ scaler.mean_
    if kind != "multiclass":
        return coef, bias
    weights, biases = np.zeros((num_outputs, coef.shape[1])), np.zeros(num_outputs)
    classes = np.asarray(model.classes_, dtype=int)
    if len(classes) == 2 and coef.shape[0] == 1:   # scikit-learn keeps one row for two classes
        weights[classes[1]], biases[classes[1]] = coef[0], bias[0]
    else:
        weights[classes], biases[classes] = coef, bias
    return weights, biases


@torch.no_grad()
def head_from_probe(net: RegionClassifierNet, datamodule, max_windows: int, batch_size: int) -> str:
    """Fit logistic regression (C chosen on validation) on the net's current pooled features of at most
    `max_windows` training windows and copy it into `net.head`. Returns what was chosen, for the log."""
    kind, splits = datamodule.labels.kind, datamodule.splits
    train = np.arange(len(splits["train"].regions))
    if len(train) > max_windows:
        train = stratified_subset(splits["train"].targets, max_windows)
    was_training = net.training
    net.eval()
    feats = {s: window_outputs(net, datamodule.window_tokens(s)[rows], datamodule.window_spans(s)[rows], "features",
                               batch_size=batch_size, desc=f"probe features ({s}) for the head")
             for s, rows in (("train", train), ("val", np.arange(len(splits["val"].regions))))}
    options = [(f"C={c}", feats["train"], feats["val"], c) for c in (0.01, 0.1, 1.0)]
    fitted, _ = choose_and_fit(kind, "head", options, splits["train"].targets[train], splits["val"].targets)
    weight, bias = linear_weights(fitted.model, kind, net.head.out_features)
    net.head.weight.copy_(torch.as_tensor(weight, dtype=net.head.weight.dtype))
    net.head.bias.copy_(torch.as_tensor(bias, dtype=net.head.bias.dtype))
    net.train(was_training)
    return f"{fitted.choice}, {len(train)} training windows"
