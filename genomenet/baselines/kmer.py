"""The k-mer spectrum baseline of region classification: overlapping k-mer frequencies of each window, a
scikit-learn logistic regression on them, k and the regularisation C chosen on validation data.

Windows are read exactly as the model reads them (same bases, same strand), so the comparison is like for like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler


def kmer_spectrum(codes: np.ndarray, k: int) -> np.ndarray:
    """Frequencies of the 4^k overlapping k-mers of each row of base codes (n, L) (A0 C1 G2 T3; k-mers holding N or
    padding, codes >= 4, are skipped) -> (n, 4^k) float32 rows summing to 1 (0 for a row without any)."""
    n, length = codes.shape
    if length < k:
        return np.zeros((n, 4**k), dtype=np.float32)
    ids = np.zeros((n, length - k + 1), dtype=np.int64)
    valid = np.ones_like(ids, dtype=bool)
    for j in range(k):
        column = codes[:, j:length - k + 1 + j].astype(np.int64)
        ids, valid = ids * 4 + (column & 3), valid & (column < 4)
    rows = np.broadcast_to(np.arange(n)[:, None], ids.shape)
    counts = np.bincount((rows * 4**k + ids)[valid], minlength=n * 4**k).reshape(n, 4**k).astype(np.float32)
    return counts / np.maximum(counts.sum(1, keepdims=True), 1)


C_GRID: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)
"""Inverse regularisation strengths every logistic regression of a report chooses from on validation data (the k-mer
baseline, the frozen probe, the head's starting probe): few windows of many features want strong regularisation, many
windows of few features weak, and no single C serves both."""


def logistic_regression(kind: str, c: float = 1.0, seed: int = 0):
    """Standardised features into logistic regression (one-vs-rest for multi-label)."""
    model = LogisticRegression(C=c, max_iter=2000, random_state=seed)
    return make_pipeline(StandardScaler(), OneVsRestClassifier(model) if kind == "multilabel" else model)


def sklearn_targets(kind: str, targets: np.ndarray) -> np.ndarray:
    """LabelSet targets in the shape scikit-learn wants: (n,) ints, or (n, C) multi-hot."""
    return targets.astype(int) if kind == "multilabel" else targets[:, 0].astype(int)


@dataclass
class FittedBaseline:
    name: str
    model: object
    choice: str
    """What was chosen on validation data (e.g. `k=4`)."""


def choose_and_fit(kind: str, name: str, options: Sequence[tuple[str, np.ndarray, np.ndarray, float]],
                   train_y: np.ndarray, val_y: np.ndarray) -> tuple[FittedBaseline, int]:
    """Fit one logistic regression per option (label, train features, val features, inverse regularisation C); keep
    the one with the best validation accuracy (3-fold cross-validation on train when there is no validation data).
    Returns it and the index of the chosen option."""
    y_train = sklearn_targets(kind, train_y)
    scores = []
    for _, x_train, x_val, c in options:
        model = logistic_regression(kind, c)
        if len(val_y):
            scores.append(model.fit(x_train, y_train).score(x_val, sklearn_targets(kind, val_y)))
        else:
            scores.append(float(np.mean(cross_val_score(model, x_train, y_train, cv=3))))
    best = int(np.argmax(scores))
    model = logistic_regression(kind, options[best][3]).fit(options[best][1], y_train)
    return FittedBaseline(name, model, options[best][0]), best


def predict_probs(kind: str, model, x: np.ndarray, num_classes: int) -> np.ndarray:
    """(n, C) class probabilities in class order, the layout `classification_metrics` reads (binary: [1 - p, p]);
    a class the model never saw in training gets probability 0."""
    raw = np.asarray(model.predict_proba(x), dtype=np.float64)
    if kind == "multilabel":
        return raw
    out = np.zeros((len(x), num_classes if kind == "multiclass" else 2))
    out[:, np.asarray(model.classes_, dtype=int)] = raw
    return out
