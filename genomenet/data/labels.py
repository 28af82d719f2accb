"""Class labels of BED regions (column 4): binary, multi-class or multi-label, checked line by line."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from genomenet.data.intervals import Region
from genomenet.errors import InputFileError

TaskKind = Literal["binary", "multiclass", "multilabel"]
LABEL_SEPARATOR = ","
"""Several labels of one region (multi-label), e.g. `enhancer,promoter`."""


def label_names(name: str) -> list[str]:
    """The labels of one BED name: `a,b` or `a, b` is `a` and `b` (spaces about each label are not part of it)."""
    return [n.strip() for n in name.split(LABEL_SEPARATOR)]


@dataclass(frozen=True)
class LabelSet:
    """The classes of a labelled BED and how a region's name becomes a target."""

    kind: TaskKind
    classes: tuple[str, ...]
    """Sorted (numerically when every label is a number); binary: classes[1] is the positive class."""

    @property
    def num_outputs(self) -> int:
        """Logits the head produces: one for binary, one per class otherwise."""
        return 1 if self.kind == "binary" else len(self.classes)

    def target(self, name: str) -> np.ndarray:
        """float32 target of one region: (1,) 0/1 for binary, (1,) class index for multi-class, (C,) multi-hot."""
        names = label_names(name)
        if self.kind == "multilabel":
            hot = np.zeros(len(self.classes), dtype=np.float32)
            hot[[self.classes.index(n) for n in names]] = 1
            return hot
        return np.array([self.classes.index(names[0])], dtype=np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "classes": list(self.classes)}

    @classmethod
    def from_dict(cls, d: dict) -> LabelSet:
        return cls(d["kind"], tuple(d["classes"]))


def infer_labels(path: str | Path, regions: list[Region], kind: TaskKind | Literal["auto"] = "auto") -> LabelSet:
    """The label set of a labelled BED; a missing or empty label, or numbers mixed with words, is a one-line error
    naming the line. `auto`: multi-label when any name holds a comma, binary with two classes, else multi-class."""
    for region in regions:
        if not region.name.strip() or not all(label_names(region.name)):
            raise InputFileError(f"{path}: line {region.line}: no label (column 4, the name, is missing or empty)")
    labelled = [(r, n, _is_number(n)) for r in regions for n in label_names(r.name)]
    numeric = [is_number for _, _, is_number in labelled]
    if numeric and any(numeric) and not all(numeric):
        first_region, first_name, first_kind = labelled[0]
        region, name, _ = next(item for item in labelled if item[2] != first_kind)
        kinds = ("a number", "a word") if first_kind else ("a word", "a number")
        raise InputFileError(f"{path}: line {region.line}: label {name!r} is {kinds[1]} but line "
                             f"{first_region.line}'s {first_name!r} is {kinds[0]}: labels must be all numbers or "
                             f"all words")
    if numeric and all(numeric):
        check_one_spelling_per_number(path, labelled)
    names = {n for _, n, _ in labelled}
    classes = tuple(sorted(names, key=float) if numeric and all(numeric) else sorted(names))
    if kind == "auto":
        kind = "multilabel" if any(LABEL_SEPARATOR in r.name for r in regions) else (
            "binary" if len(classes) == 2 else "multiclass")
    if len(classes) < 2 and kind != "multilabel":
        raise InputFileError(f"{path}: every region has the label {classes[0]!r}: a classifier needs two classes")
    if kind == "binary" and len(classes) != 2:
        raise InputFileError(f"{path}: task binary needs two labels, found {len(classes)}: {', '.join(classes[:5])}")
    if kind != "multilabel" and any(LABEL_SEPARATOR in r.name for r in regions):
        line = next(r.line for r in regions if LABEL_SEPARATOR in r.name)
        raise InputFileError(f"{path}: line {line}: several labels in one name need task multilabel")
    return LabelSet(kind, classes)


def check_one_spelling_per_number(path: str | Path, labelled: list[tuple[Region, str, bool]]) -> None:
    """`1` and `1.0` on different lines would be two classes of one number: a one-line error naming both lines."""
    first: dict[float, tuple[Region, str]] = {}
    for region, name, _ in labelled:
        seen = first.setdefault(float(name), (region, name))
        if seen[1] != name:
            raise InputFileError(f"{path}: line {region.line}: label {name!r} is the number of line {seen[0].line}'s "
                                 f"{seen[1]!r} written differently: write each class one way")


def _is_number(text: str) -> bool:
    """A finite number (`nan` and `inf` are words here: they do not sort)."""
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False
