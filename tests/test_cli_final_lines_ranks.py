"""`genomenet embed` / `track` under torchrun: only rank 0 (which writes the output) prints the final line."""

from __future__ import annotations

import pytest

import genomenet.inference.embed
import genomenet.inference.tracks
from genomenet.cli import embed_main, track_main

ARGS = ["--model", "M", "--fasta", "G.fa", "--out", "out.h5", "--sequence-parallel", "2"]


@pytest.mark.parametrize("rank, printed", [("0", True), ("1", False)])
def test_embed_and_track_print_their_final_line_on_rank_0_only(monkeypatch, capsys, rank, printed):
    monkeypatch.setenv("RANK", rank)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(genomenet.inference.embed, "embed", lambda *a, **k: "out.h5")
    monkeypatch.setattr(genomenet.inference.tracks, "track", lambda *a, **k: ["out.bedGraph"])
    assert embed_main(ARGS) == 0
    assert track_main(ARGS[:-3] + ["out.bedGraph"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == (["embeddings: out.h5", "track: out.bedGraph"] if printed else [])
