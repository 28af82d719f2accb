"""`genomenet track`: per-base information content equals -log2 p of the observed base from the model run on that
base's window; k-mer probabilities split over bases by the chain rule; bedGraph / bigWig that browsers read."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from Bio.Seq import Seq
from conftest import CHR20
from inference_models import tiny_model

from genomenet.data.tokenizers import make_tokenizer
from genomenet.errors import InputFileError
from genomenet.inference.tiling import tile_region
from genomenet.inference.tracks import TrackOptions, base_information, track
from genomenet.model.pretrained import load_pretrained

CHR20_NAME = "20:59001-159000"
TEXT = CHR20.read_text().split("\n", 1)[1].replace("\n", "")


def read_bedgraph(path: Path) -> tuple[str, dict[int, float]]:
    """The track line and base -> value; checks the lines are sorted, non-overlapping runs."""
    header, *lines = path.read_text().splitlines()
    values, last_end = {}, -1
    for line in lines:
        chrom, start, end, value = line.split("\t")
        assert chrom == CHR20_NAME and int(start) >= last_end and int(end) > int(start)
        values.update(dict.fromkeys(range(int(start), int(end)), float(value)))
        last_end = int(end)
    return header, values


def test_base_information_matches_brute_force_over_kmer_strings() -> None:
    k = 3
    log_probs = torch.log_softmax(torch.randn(1, 5, 4**k + 6, dtype=torch.float64), -1)
    targets = torch.randint(0, 4**k, (1, 5))
    ic, ent = base_information(log_probs, targets, k)
    kmers = ["".join(p) for p in itertools.product("ACGT", repeat=k)]      # id order: first base most significant
    for t in range(5):
        p = {s: math.exp(log_probs[0, t, i]) for i, s in enumerate(kmers)}
        word = kmers[targets[0, t]]
        for j in range(k):
            mass = lambda prefix, p=p: sum(v for s, v in p.items() if s.startswith(prefix))
            below = 1.0 if j == 0 else mass(word[:j])
            assert ic[0, t, j].item() == pytest.approx(-math.log2(mass(word[: j + 1]) / below), rel=1e-5)
            q = np.array([mass(word[:j] + b) for b in "ACGT"])
            q /= q.sum()
            assert ent[0, t, j].item() == pytest.approx(-(q * np.log2(q)).sum(), rel=1e-5)
        assert ic[0, t].sum().item() == pytest.approx(-log_probs[0, t, targets[0, t]].item() / math.log(2), rel=1e-5)


def reference_information(model, tile, position: int) -> tuple[float, float]:
    """-log2 p and entropy (bits, over A C G T) of the base at `position`, k = 1, from the model run on the tile's
    window alone: the prediction before it (causal) or with it masked (bidirectional)."""
    window = TEXT[tile.start : tile.end]
    if tile.strand == "-":
        window, offset = str(Seq(window).reverse_complement()), tile.end - 1 - position
    else:
        offset = position - tile.start
    tok = make_tokenizer(1)
    ids = torch.from_numpy(tok.encode(window).astype(np.int64))[None]
    with torch.no_grad():
        if model.causal:
            logits = model(ids)[0, offset - 1]
        else:
            ids[0, offset] = tok.mask_id
            logits = model(ids)[0, offset]
    probs = torch.softmax(logits.double(), -1)
    q = probs[:4] / probs[:4].sum()
    return -math.log2(probs[tok.encode(window[offset])[0]]), float(-(q * torch.log2(q)).sum())


@pytest.mark.parametrize("kind,strand", [("causal", "+"), ("causal", "-"), ("masked", "+")])
def test_track_values_equal_the_model_on_each_bases_window(tmp_path, cache_dir, kind, strand) -> None:
    model_dir = tiny_model(tmp_path / "model", kind, 1, window=64)
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t950\t1250\n{CHR20_NAME}\t1200\t1300\n")       # overlapping: merged
    outs = track(model_dir, CHR20, tmp_path / "t.bedGraph", bed, TrackOptions(strand, entropy=True),
                 cache_dir=cache_dir, batch_size=4, progress=False)
    header, ic = read_bedgraph(outs[0])
    _, entropy = read_bedgraph(outs[1])
    assert header.startswith("track type=bedGraph") and outs[1].name == "t.entropy.bedGraph"
    last = 1299 if strand == "+" or kind == "masked" else 1298      # '-' is read from 1299: no prediction for it
    assert min(ic) == 1000 and max(ic) == last                       # the N run before 1000 is a gap
    model = load_pretrained(model_dir).double()
    context = 16 if kind == "causal" else 8
    tiles = tile_region(CHR20_NAME, 950, 1300, strand, 100_000, 64, context, kind == "causal", 1)
    edges = {t.keep_start for t in tiles} | {t.keep_end - 1 for t in tiles}
    for position in sorted(p for p in edges | {1000, 1001, 1150} if 1000 <= p <= last):
        tile = next(t for t in tiles if t.keep_start <= position < t.keep_end)
        bits, ent = reference_information(model, tile, position)
        assert ic[position] == pytest.approx(bits, abs=2e-3) and entropy[position] == pytest.approx(ent, abs=2e-3)


def test_kmer_track_splits_each_tokens_information_over_its_bases(tmp_path, cache_dir) -> None:
    model_dir = tiny_model(tmp_path / "model", "causal", 3, window=96)
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t3000\t3096\n")                   # exactly one window: tokens from 3000
    _, ic = read_bedgraph(track(model_dir, CHR20, tmp_path / "t.bedGraph", bed, cache_dir=cache_dir,
                                progress=False)[0])
    model, tok = load_pretrained(model_dir).double(), make_tokenizer(3)
    ids = torch.from_numpy(tok.encode(TEXT[3000:3096]).astype(np.int64))[None]
    with torch.no_grad():
        token_bits = -torch.log_softmax(model(ids)[0, :-1], -1).gather(-1, ids[0, 1:, None])[:, 0] / math.log(2)
    per_token = [sum(ic[3000 + 3 * t + j] for j in range(3)) for t in range(1, 32)]
    np.testing.assert_allclose(per_token, token_bits.numpy(), atol=5e-3)       # values are rounded to 0.001
    assert 3000 not in ic                                                        # the first token has no prediction


def test_both_strands_is_the_mean_of_each_and_bigwig_holds_the_same_values(tmp_path, cache_dir) -> None:
    pybigwig = pytest.importorskip("pyBigWig")
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=64)
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t5000\t5400\n")
    run = lambda name, strand: track(model_dir, CHR20, tmp_path / name, bed, TrackOptions(strand),
                                     cache_dir=cache_dir, progress=False)[0]
    (_, plus), (_, minus) = read_bedgraph(run("p.bedGraph", "+")), read_bedgraph(run("m.bedGraph", "-"))
    _, both = read_bedgraph(run("b.bedGraph", "both"))
    shared = sorted(set(plus) & set(minus))
    assert len(shared) == 398                                   # each strand's first base has no prediction
    np.testing.assert_allclose([both[p] for p in shared], [(plus[p] + minus[p]) / 2 for p in shared], atol=2e-3)
    bw = pybigwig.open(str(run("p.bw", "+")))
    assert bw.chroms() == {CHR20_NAME: 100_000}
    np.testing.assert_allclose(bw.values(CHR20_NAME, 5001, 5400), [plus[p] for p in range(5001, 5400)], atol=1e-6)


def test_regions_of_one_token_are_a_gap_not_a_crash(tmp_path, cache_dir) -> None:
    """A BED of 1-bp positions (k = 1) or of regions shorter than a k-mer: every window is one token, which a causal
    model has no prediction for; the track is empty where they are, and the run ends normally."""
    for k in (1, 3):
        model_dir = tiny_model(tmp_path / f"model{k}", "causal", k, window=96)
        bed = tmp_path / "snps.bed"
        bed.write_text(f"{CHR20_NAME}\t3000\t3001\n{CHR20_NAME}\t4000\t4001\n")
        out = track(model_dir, CHR20, tmp_path / f"t{k}.bedGraph", bed, cache_dir=cache_dir, progress=False)[0]
        assert read_bedgraph(out)[1] == {}


def test_an_output_that_is_a_folder_is_one_error_before_any_work(tmp_path, cache_dir) -> None:
    model_dir = tiny_model(tmp_path / "model", "causal", 1, window=64)
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t5000\t5100\n")
    for out, made in (("a.bedGraph", "a.bedGraph"), ("b.bedGraph", "b.entropy.bedGraph")):
        (tmp_path / made).mkdir()
        with pytest.raises(InputFileError, match="is a folder"):
            track(model_dir, CHR20, tmp_path / out, bed, TrackOptions(entropy=True), cache_dir=cache_dir,
                  progress=False)
        left = [p.name for pattern in (f"{Path(out).stem}.*", f".{Path(out).stem}.*") for p in tmp_path.glob(pattern)]
        assert left == [made]                                            # no parts, no temporaries
