"""`genomenet demo`: the library times dilated and dense attention; the command prints the two timings."""

from __future__ import annotations

import pytest

from genomenet.attention import available_backends
from genomenet.attention.timing import time_dilated_vs_dense
from genomenet.cli import main


def test_timing_runs_both_attentions_at_the_requested_length_and_names_the_backend() -> None:
    t = time_dilated_vs_dense(seq_len=96, heads=2, head_dim=8, segment_lengths=(32, 64), dilation_rates=(1, 2))
    assert t.seq_len == 96 and t.segment_lengths == (32, 64) and t.dilation_rates == (1, 2)
    assert t.dilated_s > 0 and t.dense_s > 0
    assert t.backend in available_backends()


def test_demo_prints_the_dilated_and_the_dense_time(capsys: pytest.CaptureFixture) -> None:
    assert main(["demo", "--seq-len", "256"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("dilated attention, w=(2048, 4096, 8192, 16384), r=(1, 2, 4, 8): 256 tokens")
    assert out[1].startswith("dense causal attention: ") and "x the dilated time" in out[1]


def test_demo_with_a_non_positive_length_is_one_line(capfd: pytest.CaptureFixture) -> None:
    assert main(["demo", "--seq-len", "0"]) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert err == ["genomenet: error: --seq-len must be a positive number of tokens, got 0"]
