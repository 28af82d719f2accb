"""Sequence-parallel inference: two processes share every window (gloo), and the embeddings and track they write
equal one process's."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import CHR20
from inference_models import tiny_model

from genomenet.inference import read_embeddings
from genomenet.inference.embed import EmbedOptions, embed
from genomenet.inference.tracks import TrackOptions, track

REPO = Path(__file__).resolve().parents[1]
RANK_CODE = """
import sys
from genomenet.inference.embed import EmbedOptions, embed
from genomenet.inference.tracks import TrackOptions, track
model, out_h5, out_bg, bed, cache = sys.argv[1:6]
embed(model, sys.argv[6], out_h5, bed, EmbedOptions(per="position"), device="cpu", cache_dir=cache, progress=False,
      sequence_parallel=2, batch_size=3)
track(model, sys.argv[6], out_bg, bed, TrackOptions("both"), device="cpu", cache_dir=cache, progress=False,
      sequence_parallel=2)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["causal", "masked"])
def test_two_ranks_sharing_each_window_write_what_one_process_writes(tmp_path, kind) -> None:
    model = tiny_model(tmp_path / "model", kind, 1, window=128)
    bed = tmp_path / "r.bed"
    # a region of many whole windows (split over the ranks) and a short one (runs whole on each rank)
    bed.write_text("20:59001-159000\t900\t2400\ta\t0\t-\n20:59001-159000\t5000\t5050\tb\t0\t+\n")
    args = dict(device="cpu", cache_dir=tmp_path / "c", progress=False)
    one = read_embeddings(embed(model, CHR20, tmp_path / "one.h5", bed, EmbedOptions(per="position"), **args))
    one_track = track(model, CHR20, tmp_path / "one.bedGraph", bed, TrackOptions("both"), **args)[0]
    port = free_port()
    procs = [subprocess.Popen([sys.executable, "-c", RANK_CODE, str(model), str(tmp_path / "sp.h5"),
                               str(tmp_path / "sp.bedGraph"), str(bed), str(tmp_path / "c"), str(CHR20)], cwd=REPO,
                              env={**__import__("os").environ, "RANK": str(rank), "WORLD_SIZE": "2",
                                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
             for rank in (0, 1)]
    assert [p.wait(timeout=600) for p in procs] == [0, 0]
    split = read_embeddings(tmp_path / "sp.h5")
    assert (split.coords == one.coords).all()
    np.testing.assert_allclose(split.embeddings, one.embeddings, rtol=1e-4, atol=1e-4, equal_nan=True)
    lines = lambda path: [line.split("\t") for line in path.read_text().splitlines()[1:]]
    got, want = lines(tmp_path / "sp.bedGraph"), lines(one_track)
    assert len(got) == len(want) and [g[:2] for g in got] == [w[:2] for w in want]
    np.testing.assert_allclose([float(g[3]) for g in got], [float(w[3]) for w in want], atol=2e-3)
