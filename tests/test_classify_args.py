"""`genomenet classify`: bad arguments are one line before any scoring; multi-label predictions name every class
the model gives 0.5 or more."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import DMEL

from genomenet.cli import main
from genomenet.downstream.regions import prediction


@pytest.mark.parametrize(("extra", "said"), [
    (["--out", "{tmp}"], "is a folder"),
    (["--out", "{tmp}/p.tsv", "--batch-size", "0"], "--batch-size 0: must be at least 1"),
    (["--out", "{tmp}/p.tsv", "--device", "tpu:x"], "--device tpu:x: not a device"),
])
def test_bad_arguments_are_one_line_and_nothing_is_written(tmp_path: Path, capfd, extra: list[str],
                                                           said: str) -> None:
    bed = tmp_path / "r.bed"
    bed.write_text("chr4\t100\t200\ta\t0\t+\n")
    argv = ["classify", "--model", str(tmp_path / "no_model"), "--fasta", str(DMEL), "--regions", str(bed),
            *(a.format(tmp=tmp_path) for a in extra)]
    assert main(argv) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1 and said in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.bed"]


def test_multilabel_predictions_name_every_class_at_half_or_more() -> None:
    classes = ["exon", "repeat", "tss"]
    assert prediction("multilabel", classes, np.array([0.9, 0.2, 0.6])) == ("exon,tss", pytest.approx(0.6))
    assert prediction("multilabel", classes, np.array([0.1, 0.3, 0.2])) == (".", pytest.approx(0.7))
    assert prediction("multiclass", classes, np.array([0.2, 0.5, 0.3])) == ("repeat", 0.5)
