"""`genomenet embed`: stitched per-base embeddings equal the model run on each base's window, pooling, strands,
k-mers, the HDF5 layout, resuming after a crash, and several processes writing the file one process writes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from Bio.Seq import Seq
from conftest import CHR20, DMEL
from inference_models import tiny_model

from genomenet.data.tokenizers import make_tokenizer
from genomenet.inference import read_embeddings
from genomenet.inference.embed import EmbedOptions, embed
from genomenet.inference.tiling import tile_region
from genomenet.model.pretrained import load_pretrained

CHR20_NAME, DMEL_NAME = "20:59001-159000", "NC_004353.4:1100001-1300000"


def write_bed(path: Path, rows: list[tuple]) -> Path:
    path.write_text("".join("\t".join(str(x) for x in row) + "\n" for row in rows))
    return path


def reference_base_embedding(model, text: str, chrom_start: int, tile, position: int, context: int) -> np.ndarray:
    """The model run alone on the window that keeps `position`: sequence text -> Biopython reverse complement for
    '-' -> tokenizer -> hidden states of the token holding the base. Checks the window gives the promised context."""
    k = model.info.kmer_size
    window = text[tile.start - chrom_start : tile.end - chrom_start]
    if tile.strand == "-":
        window, offset = str(Seq(window).reverse_complement()), tile.end - 1 - position
        assert offset >= min(context, tile.end - 1 - position)
    else:
        offset = position - tile.start
    assert tile.start <= position < tile.end
    ids = torch.from_numpy(make_tokenizer(k).encode(window).astype(np.int64))[None]
    with torch.no_grad():
        hidden = model.hidden_states(ids)[0].double().numpy()
    return hidden[offset // k]


@pytest.mark.parametrize("kind,k", [("causal", 1), ("masked", 1), ("causal", 3), ("masked", 2)])
def test_per_position_embeddings_equal_the_model_on_each_bases_window(tmp_path, cache_dir, kind, k) -> None:
    model_dir = tiny_model(tmp_path / "model", kind, k, window=96)
    # regions on both strands, one of a length that is not a multiple of k, one starting in the N run
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 990, 1400, "a", 0, "+"), (CHR20_NAME, 5001, 5330, "b", 0, "-")])
    out = embed(model_dir, CHR20, tmp_path / "e.h5", bed, EmbedOptions(per="position"), cache_dir=cache_dir,
                batch_size=3, progress=False)
    got = read_embeddings(out)
    model = load_pretrained(model_dir).double()
    text = (CHR20.read_text().split("\n", 1)[1]).replace("\n", "")
    context = 24 if kind == "causal" else 12
    for index, (start, end, strand) in enumerate([(990, 1400, "+"), (5001, 5330, "-")]):
        rows = got.coords["region"] == index
        tiles = tile_region(CHR20_NAME, start, end, strand, 100_000, 96, context, kind == "causal", k)
        coords, values = got.coords[rows], got.embeddings[rows]
        assert coords["strand"][0] == strand and coords["name"][0] == "ab"[index]
        assert (coords["end"] - coords["start"] == 1).all() and len(coords) == end - start
        edges = {t.keep_start for t in tiles} | {t.keep_end - 1 for t in tiles}   # where stitching could slip
        positions = sorted(edges | set(np.random.default_rng(start).integers(start, end, 10).tolist()))
        for position in positions:
            row = position - start if strand == "+" else end - 1 - position
            assert coords["start"][row] == position
            tile = next(t for t in tiles if t.keep_start <= position < t.keep_end)
            if text[position] in "Nn" or (k > 1 and _in_n_token(text, tile, position, k)):
                assert np.isnan(values[row]).all() and coords["bases"][row] == 0
                continue
            want = reference_base_embedding(model, text, 0, tile, position, context)
            np.testing.assert_allclose(values[row], want, rtol=1e-3, atol=2e-3)  # float32 vs float64


def _in_n_token(text: str, tile, position: int, k: int) -> bool:
    offset = (position - tile.start) if tile.strand == "+" else (tile.end - 1 - position)
    first = offset - offset % k
    window = text[tile.start : tile.end]
    bases = window if tile.strand == "+" else window[::-1]
    return "N" in bases[first : first + k].upper()


def test_region_and_tile_rows_are_means_of_the_per_position_rows(tmp_path, cache_dir) -> None:
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 800, 1500, "x", 0, "-"), (CHR20_NAME, 3000, 3700, "y")])
    run = lambda name, **kw: read_embeddings(embed(model_dir, CHR20, tmp_path / name, bed, EmbedOptions(**kw),
                                                   cache_dir=cache_dir, progress=False))
    per_base, per_region = run("b.h5", per="position"), run("r.h5", per="region")
    binned, maxed = run("n.h5", per="position", bin_size=100), run("m.h5", per="region", pooling="max")
    for index in range(2):
        rows = per_base.embeddings[per_base.coords["region"] == index]
        np.testing.assert_allclose(per_region.embeddings[index], np.nanmean(rows, 0), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(maxed.embeddings[index], np.nanmax(rows, 0), rtol=1e-6)
        assert per_region.coords["bases"][index] == (~np.isnan(rows[:, 0])).sum()
        bins = binned.embeddings[binned.coords["region"] == index]
        np.testing.assert_allclose(bins[1], np.nanmean(rows[100:200], 0), rtol=1e-5, atol=1e-6)
    # minus strand: rows run from the region's end, bins too
    assert per_base.coords["start"][0] == 1499 and binned.coords[0][["start", "end"]].tolist() == (1400, 1500)


def test_reverse_complement_average_is_the_mean_of_both_strands(tmp_path, cache_dir) -> None:
    model_dir = tiny_model(tmp_path / "model", "masked", 1, window=128)
    plus = write_bed(tmp_path / "p.bed", [(CHR20_NAME, 2000, 2600, "r", 0, "+")])
    minus = write_bed(tmp_path / "m.bed", [(CHR20_NAME, 2000, 2600, "r", 0, "-")])
    run = lambda bed, name, **kw: read_embeddings(embed(model_dir, CHR20, tmp_path / name, bed,
                                                        EmbedOptions(per="position", **kw), cache_dir=cache_dir,
                                                        progress=False)).embeddings
    forward, reverse = run(plus, "f.h5"), run(minus, "r.h5")[::-1]        # both in genomic order
    both = run(plus, "b.h5", reverse_complement="average")
    np.testing.assert_allclose(both, (forward + reverse) / 2, rtol=1e-5, atol=1e-5)
    assert not np.allclose(forward, reverse, atol=1e-3)


@pytest.fixture
def dmel_n_run(tmp_path: Path, dmel) -> tuple[Path, str]:
    """D. melanogaster chr4 bases 1,195,001-1,220,000 as two records: 5.7 kb of sequence then N to the end, and
    2.7 kb of N then 2.3 kb of sequence (the slice's 17,000 N run)."""
    text = dmel.sequence(DMEL_NAME, 95_000, 120_000)
    path = tmp_path / "dmel_n.fa"
    path.write_text(f">chr4_slice\n{text[:20_000]}\n>second\n{text[20_000:]}\n")
    return path, text


def test_file_opens_with_plain_h5py_and_records_model_fasta_and_options(tmp_path, cache_dir, dmel_n_run) -> None:
    fasta, text = dmel_n_run
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    out = embed(model_dir, fasta, tmp_path / "e.h5", None, EmbedOptions(per="tile"), cache_dir=cache_dir,
                progress=False)
    with h5py.File(out, "r") as f:
        assert f["embeddings"].shape == (157 + 40, 32) and f["embeddings"].compression == "gzip"
        assert [c.decode() for c in f["regions/chrom"]] == ["chr4_slice", "second"]
        assert f["regions/row_count"][:].tolist() == [157, 40] and f["regions/row_start"][1] == 157
        assert f["rows/start"][1] == 128 and f["rows/end"][156] == 20_000 and f["rows/region"][157] == 1
        assert json.loads(f.attrs["options"])["window"] == 128 and f.attrs["fasta_name"] == fasta.name
        assert len(f.attrs["model_sha256"]) == 64 and len(f.attrs["fasta_sha256"]) == 64
    got = read_embeddings(out)
    offsets = np.where(got.coords["chrom"] == "second", 20_000, 0)
    real = [sum(b not in "Nn" for b in text[o + s : o + e]) for o, s, e in zip(offsets, got.coords["start"],
                                                                            got.coords["end"])]
    assert got.coords["bases"].tolist() == real and 0 in real
    assert np.isnan(got.embeddings[got.coords["bases"] == 0]).all()
    assert not np.isnan(got.embeddings[got.coords["bases"] > 0]).any()
    assert got.metadata["model_config"]["context_length"] == 128


def _options(**kw) -> EmbedOptions:
    return EmbedOptions(per="position", bin_size=10, **kw)


def test_a_run_that_crashes_midway_resumes_to_the_same_file(tmp_path, cache_dir, monkeypatch) -> None:
    import genomenet.inference.embed as embed_module
    from genomenet.inference.parts import PartStore, parts_dir

    model_dir = tiny_model(tmp_path / "model", "causal", 3, window=96)
    monkeypatch.setattr(embed_module, "CHUNK_BYTES", 20_000)       # many chunks
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 500, 4000, "a", 0, "-"), (CHR20_NAME, 20_000, 30_000, "b")])
    args = dict(regions=bed, options=_options(), cache_dir=cache_dir, progress=False)
    whole = embed(model_dir, CHR20, tmp_path / "whole.h5", **args)
    saved, real_save = [], PartStore.save

    def crash_after_five(self, index, arrays):
        if len(saved) == 5:
            raise KeyboardInterrupt  # the process dies here
        saved.append(index)
        real_save(self, index, arrays)

    monkeypatch.setattr(PartStore, "save", crash_after_five)
    with pytest.raises(KeyboardInterrupt):
        embed(model_dir, CHR20, tmp_path / "again.h5", **args)
    assert not (tmp_path / "again.h5").exists() and len(list(parts_dir(tmp_path / "again.h5").glob("*.npz"))) == 5
    monkeypatch.setattr(PartStore, "save", lambda self, i, a: (saved.append(i), real_save(self, i, a)))
    embed(model_dir, CHR20, tmp_path / "again.h5", **args)
    assert saved[:5] == [0, 1, 2, 3, 4] and 0 not in saved[5:]           # finished chunks are not recomputed
    assert (tmp_path / "again.h5").read_bytes() == whole.read_bytes()
    assert not parts_dir(tmp_path / "again.h5").exists()


def test_rerun_with_other_options_is_refused_not_mixed_in(tmp_path, cache_dir, capsys) -> None:
    from genomenet.cli import main

    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 500, 4000)])
    base = ["embed", "--model", str(model_dir), "--fasta", str(CHR20), "--regions", str(bed), "--out",
            str(tmp_path / "e.h5"), "--cache-dir", str(cache_dir), "--quiet"]
    assert main(base) == 0
    before = (tmp_path / "e.h5").read_bytes()
    assert main(base) == 0 and "already complete" in capsys.readouterr().err
    assert main(base + ["--layer", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "options.layer was 2, now 1" in err and "e.h5" in err
    assert (tmp_path / "e.h5").read_bytes() == before


def test_regions_from_a_pipe_give_the_file_of_the_bed_they_came_from(tmp_path, cache_dir) -> None:
    """`--regions <(zcat r.bed.gz)` hands over /dev/fd/N, a pipe that reads once: the job is identified by the records
    read (regions_sha256), not by a second read of the path, so output and checksum are those of the plain BED."""
    import gzip

    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 500, 4000, "a", 0, "-"), (CHR20_NAME, 9000, 9500, "b")])
    read_end, write_end = os.pipe()
    os.write(write_end, gzip.compress(bed.read_bytes()))   # fits the pipe's buffer: no writer thread needed
    os.close(write_end)
    args = dict(cache_dir=cache_dir, progress=False)
    try:
        piped = embed(model_dir, CHR20, tmp_path / "piped.h5", f"/dev/fd/{read_end}", **args)
    finally:
        os.close(read_end)
    plain = embed(model_dir, CHR20, tmp_path / "plain.h5", bed, **args)
    with h5py.File(piped, "r") as a, h5py.File(plain, "r") as b:
        assert a.attrs["regions_sha256"] == b.attrs["regions_sha256"]
        np.testing.assert_array_equal(a["embeddings"][:], b["embeddings"][:])


@pytest.mark.slow
def test_sigkill_midway_then_rerun_gives_the_uninterrupted_file(tmp_path, cache_dir) -> None:
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    code = ("import sys, genomenet.inference.embed as e; e.CHUNK_BYTES = 64_000; "
            "e.embed(sys.argv[1], sys.argv[2], sys.argv[3], options=e.EmbedOptions(per='tile'), "
            "cache_dir=sys.argv[4], progress=False)")
    run = lambda out: [sys.executable, "-c", code, str(model_dir), str(DMEL), str(tmp_path / out), str(cache_dir)]
    subprocess.run(run("whole.h5"), check=True)
    child = subprocess.Popen(run("killed.h5"))
    parts = tmp_path / "killed.h5.parts"
    while len(list(parts.glob("*.npz"))) < 3 and child.poll() is None:
        time.sleep(0.05)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not (tmp_path / "killed.h5").exists()
    subprocess.run(run("killed.h5"), check=True)
    assert (tmp_path / "killed.h5").read_bytes() == (tmp_path / "whole.h5").read_bytes()


def _embed_as_rank(rank: int, world: int, model_dir: str, out: str, cache: str, bed: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world))
    import genomenet.inference.embed as e

    e.CHUNK_BYTES = 40_000
    e.embed(model_dir, CHR20, out, bed, _options(), device="cpu", cache_dir=cache, progress=False)


@pytest.mark.slow
def test_two_processes_write_the_file_one_process_writes(tmp_path, cache_dir) -> None:
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 900, 9000, "a", 0, "-"), (CHR20_NAME, 9100, 9300),
                                         (CHR20_NAME, 20_000, 30_000, "c", 0, "+")])
    _spawn(model_dir, tmp_path / "one.h5", cache_dir, bed, world=1)   # fresh processes alike: no state of this one
    _spawn(model_dir, tmp_path / "two.h5", cache_dir, bed, world=2)
    assert (tmp_path / "two.h5").read_bytes() == (tmp_path / "one.h5").read_bytes()


def _spawn(model_dir: Path, out: Path, cache: Path, bed: Path, world: int) -> None:
    code = ("import sys; sys.path.insert(0, 'tests'); from test_inference_embed import _embed_as_rank; "
            "_embed_as_rank(int(sys.argv[1]), int(sys.argv[2]), *sys.argv[3:])")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(rank), str(world), str(model_dir), str(out),
                               str(cache), str(bed)], cwd=Path(__file__).resolve().parents[1])
             for rank in reversed(range(world))]
    assert [p.wait(timeout=300) for p in procs] == [0] * world


def test_short_regions_are_batched_together_and_unstranded_ones_stay_unstranded(tmp_path, cache_dir,
                                                                                monkeypatch) -> None:
    from genomenet.inference.runner import InferenceModel

    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=128)
    rows = [(CHR20_NAME, 2000 + 300 * i, 2100 + 300 * i + i, f"r{i}", 0, "+-."[i % 3]) for i in range(10)]
    bed = write_bed(tmp_path / "r.bed", rows)
    calls, real_hidden = [], InferenceModel.hidden
    monkeypatch.setattr(InferenceModel, "hidden", lambda self, ids, *a: (calls.append(ids.shape), real_hidden(
        self, ids, *a))[1])
    got = read_embeddings(embed(model_dir, CHR20, tmp_path / "e.h5", bed, cache_dir=cache_dir, batch_size=8,
                                progress=False))
    assert [shape[0] for shape in calls] == [1, 8, 2]      # the warm-up window, then ten windows in two passes
    assert got.coords["strand"].tolist() == ["+-."[i % 3] for i in range(10)]
    assert got.coords["name"].tolist() == [f"r{i}" for i in range(10)]
    alone = read_embeddings(embed(model_dir, CHR20, tmp_path / "one.h5", write_bed(tmp_path / "one.bed", rows[4:5]),
                                  cache_dir=cache_dir, progress=False))
    np.testing.assert_allclose(got.embeddings[4], alone.embeddings[0], rtol=1e-5, atol=1e-5)  # padding is invisible


@pytest.mark.parametrize("strand", ["+", "-"])
def test_flanks_give_a_regions_edge_bases_context_but_are_not_pooled(tmp_path, cache_dir, strand) -> None:
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=96)
    bed = write_bed(tmp_path / "r.bed", [(CHR20_NAME, 3000, 3150, "r", 0, strand)])
    got = read_embeddings(embed(model_dir, CHR20, tmp_path / "e.h5", bed, EmbedOptions(per="position", flank=200),
                                cache_dir=cache_dir, progress=False))
    assert len(got.embeddings) == 150 and got.coords["start"].min() == 3000
    model = load_pretrained(model_dir).double()
    text = (CHR20.read_text().split("\n", 1)[1]).replace("\n", "")
    tiles = tile_region(CHR20_NAME, 3000, 3150, strand, 100_000, 96, 24, True, 1, flank=200)
    for position in (3000, 3001, 3075, 3149):
        tile = next(t for t in tiles if t.keep_start <= position < t.keep_end)
        before = position - tile.start if strand == "+" else tile.end - 1 - position
        assert before >= 24                                  # the flank is its context, even at the region's edge
        row = position - 3000 if strand == "+" else 3149 - position
        want = reference_base_embedding(model, text, 0, tile, position, 24)
        np.testing.assert_allclose(got.embeddings[row], want, rtol=1e-3, atol=2e-3)
