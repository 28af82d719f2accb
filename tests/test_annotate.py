"""`genomenet annotate`: each base's probabilities are those of the segmenter run on the window that keeps it, the
GFF3 is `decode_features` of the whole contig's tracks however the run was chunked, an interrupted run resumes to
the same files, and bad input is one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from conftest import CHR20, LAMBDA
from inference_models import tiny_model
from torch import nn

import genomenet.downstream.annotate as annotate_module
from genomenet.cli import main
from genomenet.data.tokenizers import make_tokenizer
from genomenet.downstream.annotate import AnnotateOptions, GeneStream, annotate, quantized, with_model_thresholds
from genomenet.downstream.gene_decoding import DecodeOptions, GFF3Writer, decode_features
from genomenet.inference.tiling import tile_region
from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.segmenter import SegmenterInfo, SegmenterNet, export_segmenter, load_segmenter

CHR20_NAME = "20:59001-159000"
CHR20_TEXT = CHR20.read_text().split("\n", 1)[1].replace("\n", "")
CLASSES = ["gene", "exon", "intron", "CDS", "splice_donor", "splice_acceptor"]


@pytest.fixture(autouse=True)
def one_thread():
    """Small windows on shared cores: one thread is many times faster than two that wait on each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def random_segmenter(out, classes=CLASSES, k: int = 1, window: int = 512, seed: int | None = None, head: str = "conv",
                     base_channels: int = 0, thresholds: dict[str, float] | None = None, out_scale: float = 1.0):
    """A 1-layer segmenter with random weights, its output layer scaled up so probabilities spread over (0, 1)
    (out_scale 0: every probability is exactly 0.5)."""
    if seed is not None:
        torch.manual_seed(seed)
    tok = make_tokenizer(k)
    cfg = LongNetConfig(vocab_size=tok.vocab_size, n_layers=1, d_model=32, n_heads=2, segment_lengths=[64, 128, 256],
                        dilation_rates=[1, 2, 4])
    net = SegmenterNet(LongNet(cfg, causal=True), len(classes), k, head, "both",
                       torch.as_tensor(tok.reverse_complement_ids), tok.pad_id, 16, 5, head_levels=3, head_pool=4,
                       head_base_channels=base_channels, head_base_kernel=7, token_bases=tok.base_codes)
    with torch.no_grad():
        net.head.out.weight.normal_(0.0, out_scale)
        if out_scale == 0:
            net.head.out.bias.zero_()
    shape = {"kind": head, "hidden": 16, "kernel": 5} | ({"levels": 3, "pool": 4} if head == "unet" else {})
    shape |= {"base_channels": base_channels, "base_kernel": 7} if base_channels else {}
    info = SegmenterInfo(cfg, True, k, list(classes), shape, "both", window, thresholds)
    return export_segmenter(net, info, out)


def read_tracks(paths: dict[str, object], lengths: dict[str, int]) -> dict[str, np.ndarray]:
    """contig -> (length, classes) float64 probabilities from bedGraph files, NaN where no line covers a base."""
    probs = {c: np.full((n, len(paths)), np.nan) for c, n in lengths.items()}
    for j, path in enumerate(paths.values()):
        header, *lines = path.read_text().splitlines()
        assert header.startswith("track type=bedGraph")
        for line in lines:
            chrom, start, end, value = line.split("\t")
            probs[chrom][int(start) : int(end), j] = float(value)
    return probs


def reference_gff3(path, probs: dict[str, np.ndarray], classes, lengths, options: DecodeOptions) -> str:
    """The GFF3 of `decode_features` on each whole contig."""
    with GFF3Writer(path, lengths) as writer:
        for chrom, track in probs.items():
            writer.write(decode_features(chrom, track, classes, 0, options))
    return path.read_text()


# every base from the window that keeps it -----------------------------------------------------------------------


@pytest.mark.parametrize(("head", "base_channels"), [("conv", 0), ("unet", 0), ("conv", 8)])
def test_track_values_equal_the_segmenter_run_on_the_window_that_keeps_each_base(tmp_path, cache_dir, head,
                                                                                  base_channels) -> None:
    model_dir = random_segmenter(tmp_path / "seg", window=512, head=head, base_channels=base_channels)
    end = 100_000                                                                 # the whole contig
    outs = annotate(model_dir, CHR20, tmp_path / "a.gff3", cache_dir=cache_dir, batch_size=4, progress=False)
    assert [p.name for p in outs] == ["a.gff3"] + [f"a.{c}.bedGraph" for c in CLASSES]
    assert not (tmp_path / "a.gff3.parts").exists()
    probs = read_tracks(dict(zip(CLASSES, outs[1:])), {CHR20_NAME: 100_000})[CHR20_NAME]
    assert np.isnan(probs[:1000]).all() and not np.isnan(probs[1000:end]).any()  # the N run is a gap
    net, tok = load_segmenter(model_dir, make_tokenizer).double(), make_tokenizer(1)
    tiles = tile_region(CHR20_NAME, 0, end, "+", 100_000, 512, 64, False)         # context: window / 8 on each side
    differs = 0
    for i in (0, 1, 2, len(tiles) // 2, len(tiles) - 2, len(tiles) - 1):
        tile = tiles[i]
        assert tile.length == 512 and tile.strand == "+"
        assert tile.keep_start - tile.start >= 64 or tile.start == 0                # context on each side of a base
        assert tile.end - tile.keep_end >= 64 or tile.end == end
        ids = torch.from_numpy(tok.encode(CHR20_TEXT[tile.start : tile.end]).astype(np.int64))[None]
        with torch.no_grad():
            expected = torch.sigmoid(net(ids))[0].numpy()                           # (512, classes), float64
        kept = slice(tile.keep_start - tile.start, tile.keep_end - tile.start)
        expected[ids[0].numpy() == tok.n_id] = np.nan
        # bedGraph keeps 3 decimals (5e-4) and the run is float32 (the U-Net's random weights drift up to 9e-4)
        np.testing.assert_allclose(probs[tile.keep_start : tile.keep_end], expected[kept], atol=1.5e-3)
        if i + 1 < len(tiles):  # the next window sees the same bases from elsewhere: another value, often
            after = tiles[i + 1]
            ids = torch.from_numpy(tok.encode(CHR20_TEXT[after.start : after.end]).astype(np.int64))[None]
            with torch.no_grad():
                other = torch.sigmoid(net(ids))[0].numpy()
            shared = slice(after.start, tile.keep_end)
            gap = np.abs(probs[shared] - other[: tile.keep_end - after.start])
            differs += int((gap > 0.01).sum())
    assert differs > 100                                          # the window a base's value comes from matters


def test_short_regions_batched_together_have_the_values_of_each_run_alone(tmp_path, cache_dir) -> None:
    model_dir = random_segmenter(tmp_path / "seg", window=512)
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t2000\t2100\n{CHR20_NAME}\t3000\t3300\n")     # one window each, one batch
    outs = annotate(model_dir, CHR20, tmp_path / "a.gff3", bed, cache_dir=cache_dir, progress=False)
    probs = read_tracks(dict(zip(CLASSES, outs[1:])), {CHR20_NAME: 100_000})[CHR20_NAME]
    net, tok = load_segmenter(model_dir, make_tokenizer).double(), make_tokenizer(1)
    for start, end in ((2000, 2100), (3000, 3300)):
        ids = torch.from_numpy(tok.encode(CHR20_TEXT[start:end]).astype(np.int64))[None]
        with torch.no_grad():
            np.testing.assert_allclose(probs[start:end], torch.sigmoid(net(ids))[0].numpy(), atol=1e-3)


def test_regions_bigwig_class_subset_and_the_command_line(tmp_path, cache_dir, capsys) -> None:
    pybigwig = pytest.importorskip("pyBigWig")
    model_dir = random_segmenter(tmp_path / "seg", window=256)
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t5000\t6000\n{CHR20_NAME}\t5800\t7000\t\t0\t-\n")   # overlapping: merged, on '+'
    run = lambda out, **kw: annotate(model_dir, CHR20, tmp_path / out, bed, AnnotateOptions(**kw),
                                     cache_dir=cache_dir, progress=False)
    bedgraphs = run("b.gff3")
    bigwigs = run("w.gff3", bigwig=True, classes=("exon", "CDS"))
    assert [p.name for p in bigwigs] == ["w.gff3", "w.exon.bw", "w.CDS.bw"]
    code = main(["annotate", "--model", str(model_dir), "--fasta", str(CHR20), "--regions", str(bed), "--out",
                 str(tmp_path / "n.gff3"), "--no-tracks", "--cache-dir", str(cache_dir), "--quiet"])
    assert code == 0 and capsys.readouterr().out == f"annotation: {tmp_path / 'n.gff3'}\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("n.")) == ["n.gff3"]
    probs = read_tracks(dict(zip(CLASSES, bedgraphs[1:])), {CHR20_NAME: 100_000})[CHR20_NAME]
    assert not np.isnan(probs[5000:7000]).any() and np.isnan(probs[:5000]).all() and np.isnan(probs[7000:]).all()
    for path, j in zip(bigwigs[1:], (1, 3)):
        bw = pybigwig.open(str(path))
        assert bw.chroms() == {CHR20_NAME: 100_000}
        np.testing.assert_allclose(bw.values(CHR20_NAME, 5000, 7000), probs[5000:7000, j], atol=1e-6)
    gff3 = bedgraphs[0].read_text()
    assert gff3 == bigwigs[0].read_text() == (tmp_path / "n.gff3").read_text()
    assert gff3.startswith(f"##gff-version 3\n##sequence-region {CHR20_NAME} 1 100000\n")


def test_features_are_called_at_the_models_thresholds_unless_a_threshold_is_given(tmp_path, cache_dir,
                                                                                  capsys) -> None:
    own = {c: 0.4 if c in ("gene", "exon") else 0.6 for c in CLASSES}   # every probability is 0.5
    model_dir = random_segmenter(tmp_path / "seg", window=256, thresholds=own, out_scale=0.0)
    assert load_segmenter(model_dir, make_tokenizer).info.thresholds == own
    bed = tmp_path / "r.bed"
    bed.write_text(f"{CHR20_NAME}\t5000\t7000\n")
    lengths = {CHR20_NAME: 100_000}
    outs = annotate(model_dir, CHR20, tmp_path / "m.gff3", bed, cache_dir=cache_dir, progress=False)
    probs = read_tracks(dict(zip(CLASSES, outs[1:])), lengths)
    at_model = reference_gff3(tmp_path / "ref_m.gff3", probs, CLASSES, lengths, DecodeOptions(class_thresholds=own))
    assert outs[0].read_text() == at_model
    assert at_model.count("\tgene\t") == at_model.count("\texon\t") == 1 and "\tCDS\t" not in at_model
    code = main(["annotate", "--model", str(model_dir), "--fasta", str(CHR20), "--regions", str(bed), "--out",
                 str(tmp_path / "h.gff3"), "--threshold", "0.5", "--no-tracks", "--cache-dir", str(cache_dir),
                 "--quiet"])
    at_half = reference_gff3(tmp_path / "ref_h.gff3", probs, CLASSES, lengths, DecodeOptions(threshold=0.5))
    assert code == 0 and (tmp_path / "h.gff3").read_text() == at_half
    assert at_half.count("\tgene\t") == at_half.count("\tCDS\t") == 1
    capsys.readouterr()


def test_the_models_thresholds_decode_unless_switched_off_and_a_class_threshold_given_wins() -> None:
    model = {"gene": 0.3, "exon": 0.7}
    assert with_model_thresholds(AnnotateOptions(), model).decode.class_thresholds == model
    assert with_model_thresholds(AnnotateOptions(model_thresholds=False), model) == AnnotateOptions(
        model_thresholds=False)
    assert with_model_thresholds(AnnotateOptions(), None) == AnnotateOptions()
    own = AnnotateOptions(decode=DecodeOptions(class_thresholds={"exon": 0.9}))
    assert with_model_thresholds(own, model).decode.class_thresholds == {"gene": 0.3, "exon": 0.9}


# the GFF3 is the decoding of the whole contig -------------------------------------------------------------------


BASES = "ACGT"


def planted_contig(rng: np.random.Generator, length: int) -> tuple[str, int]:
    """A contig whose bases say what they are: A intergenic, G exon (UTR), C exon and CDS, T intron; single A in
    introns (gaps a max_gap of 3 bridges), short genic noise between genes (shorter than min_gene), one N run.
    Returns the sequence and the number of genes planted."""
    pieces, genes = [], 0
    while sum(map(len, pieces)) < length - 8000:
        pieces.append("A" * int(rng.integers(200, 1500)))
        if rng.random() < 0.3:
            pieces.append("".join(rng.choice(list("CGT"), int(rng.integers(5, 60)))) + "A" * 20)
        if rng.random() < 0.1:
            pieces.append("N" * 300 + "A" * 20)
        exons = []
        for _ in range(int(rng.integers(1, 5))):
            g5, c, g3 = (int(x) for x in rng.integers((0, 100, 0), (15, 500, 15)))
            exons.append("G" * g5 + "C" * c + "G" * g3)
        introns = ["".join(np.where(rng.random(int(rng.integers(100, 900))) < 0.01, "A", "T")) for _ in exons[1:]]
        pieces.append("".join(e + i for e, i in zip(exons, [*introns, ""])))
        genes += 1
    pieces.append("A" * (length - sum(map(len, pieces))))
    assert len("".join(pieces)) == length
    return "".join(pieces), genes


class PlantedSegmenter(nn.Module):
    """Logits +-6 from the planted rule on each base, plus up to +-2 from a random segmenter's logits: calls follow
    the plant, probabilities depend on the window (so stitching shows)."""

    def __init__(self, net: SegmenterNet):
        super().__init__()
        self.net, self.info = net, net.info

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        a, c, g, t = (ids == i for i in range(4))
        exon = c | g
        before = torch.nn.functional.pad(exon[:, :-1], (1, 0))   # the base before is exonic
        after = torch.nn.functional.pad(exon[:, 1:], (0, 1))
        rule = torch.stack([c | g | t, exon, t, c, t & before, t & after], -1)    # CLASSES order
        return torch.where(rule, 6.0, -6.0) + 2 * torch.tanh(self.net(ids))


def test_gff3_is_the_decoding_of_each_whole_contig_read_back_from_the_tracks(tmp_path, cache_dir,
                                                                               monkeypatch) -> None:
    seed = np.random.SeedSequence().entropy
    rng = np.random.default_rng(seed)
    (a, genes_a), (b, genes_b), (skipped, _) = (planted_contig(rng, n) for n in (40_000, 15_000, 3_000))
    fasta = tmp_path / "planted.fa"
    fasta.write_text(f">chrA\n{a}\n>chrS\n{skipped}\n>chrB\n{b}\n")
    lengths = {"chrA": 40_000, "chrS": 3_000, "chrB": 15_000}
    bed = tmp_path / "r.bed"
    bed.write_text("chrB\t0\t15000\nchrA\t0\t40000\n")                      # chrS is not annotated
    model_dir = random_segmenter(tmp_path / "seg", window=512)
    planted = lambda path, tokenizer_for: PlantedSegmenter(load_segmenter(path, tokenizer_for))
    monkeypatch.setattr(annotate_module, "load_segmenter", planted)
    monkeypatch.setattr(annotate_module, "CHUNK_BASES", 2048)                # chunks of 4 windows: ~1.5 kb kept
    monkeypatch.setattr(annotate_module, "DECODE_BASES", 1000)
    decode = DecodeOptions(max_gap=3, min_gene=100, min_exon=10)
    outs = annotate(model_dir, fasta, tmp_path / "p.gff3", bed, AnnotateOptions(decode=decode), cache_dir=cache_dir,
                    progress=False)
    probs = read_tracks(dict(zip(CLASSES, outs[1:])), lengths)
    assert np.isnan(probs["chrS"]).all()
    del probs["chrS"]
    expected = reference_gff3(tmp_path / "ref.gff3", probs, CLASSES, lengths, decode)
    assert outs[0].read_text() == expected, f"seed {seed}"
    genes = [line.split("\t") for line in expected.splitlines() if "\tgene\t" in line]
    assert len(genes) == genes_a + genes_b, f"seed {seed}"                    # the planted genes, no noise
    assert max(int(g[4]) - int(g[3]) for g in genes) > 2000                   # genes cross decoding pieces and chunks
    assert "+" in {g[6] for g in genes}                                         # splice sites give strands


def test_gene_stream_fed_in_pieces_decodes_as_the_whole_track() -> None:
    seed = np.random.SeedSequence().entropy
    rng = np.random.default_rng(seed)
    for trial in range(40):
        classes = ["intergenic", "gene", "exon", "CDS", "splice_donor"] if trial % 2 else ["exon", "intron", "CDS"]
        n = int(rng.integers(1, 5000))
        blocks = np.repeat(rng.random((n // 20 + 1, len(classes))), 20, axis=0)[:n]   # runs of ~20 bases
        probs = np.clip(blocks + rng.normal(0, 0.15, (n, len(classes))), 0, 1)
        probs[rng.random(n) < 0.01] = np.nan
        values = quantized(probs)
        decode = DecodeOptions(max_gap=int(rng.integers(0, 30)), min_gene=int(rng.integers(1, 50)), min_exon=3)
        stream, features, start = GeneStream("c", 100, classes, decode, 10**9), [], 0
        while start < n:
            step = int(rng.integers(1, 400))
            features += stream.feed(values[start : start + step])
            start += step
        features += stream.finish()
        whole = decode_features("c", np.where(values == 65535, np.nan, values / 1000), classes, 100, decode)
        key = lambda fs: [(f.type, f.start, f.end, f.strand, f.phase, f"{f.score:.9f}") for f in fs]  # IDs: local
        assert key(features) == key(whole) and not len(stream.held), f"seed {seed}, trial {trial}"


def test_gene_stream_holds_only_an_unfinished_gene_call_and_cuts_past_max_gene() -> None:
    classes = ["gene", "exon"]
    stream = GeneStream("c", 0, classes, DecodeOptions(max_gap=5), max_gene=3000)
    for _ in range(10):
        assert stream.feed(np.full((1000, 2), 100, dtype=np.uint16)) == []     # nothing called: nothing held
        assert len(stream.held) == 6                                             # max_gap + 1: a gap may go on
    stream.feed(np.full((1000, 2), 900, dtype=np.uint16))
    assert len(stream.held) == 1006
    with pytest.warns(UserWarning, match="decoded in pieces"):                   # over 3000 bases held: cut
        features = [f for _ in range(3) for f in stream.feed(np.full((1000, 2), 900, dtype=np.uint16))]
    features += stream.finish()
    assert [(f.start, f.end) for f in features if f.type == "gene"] == [(10_000, 13_000), (13_000, 14_000)]


# interrupted runs -------------------------------------------------------------------------------------------------


def test_an_interrupted_run_resumes_to_the_same_files_and_other_options_are_refused(tmp_path, cache_dir,
                                                                                     monkeypatch, capsys) -> None:
    model_dir = random_segmenter(tmp_path / "seg", window=512)
    monkeypatch.setattr(annotate_module, "CHUNK_BASES", 4096)                # 8 windows, one batch, per part
    bed = tmp_path / "r.bed"
    bed.write_text("gi|9626243|ref|NC_001416.1|\t0\t24000\n")
    run = lambda out: annotate(model_dir, LAMBDA, tmp_path / out, bed, cache_dir=cache_dir, progress=False)
    whole = run("whole.gff3")
    forward, calls = SegmenterNet.forward, []

    def failing(self, ids):
        calls.append(1)
        if len(calls) > 4:                                                   # the warm-up, then 3 batches
            raise RuntimeError("killed")
        return forward(self, ids)

    monkeypatch.setattr(SegmenterNet, "forward", failing)
    with pytest.raises(RuntimeError, match="killed"):
        run("r.gff3")
    assert len(list((tmp_path / "r.gff3.parts").glob("*.npz"))) == 3 and not (tmp_path / "r.gff3").exists()
    monkeypatch.setattr(SegmenterNet, "forward", forward)
    calls.clear()
    code = main(["annotate", "--model", str(model_dir), "--fasta", str(LAMBDA), "--out", str(tmp_path / "r.gff3"),
                 "--regions", str(bed), "--window", "256", "--cache-dir", str(cache_dir), "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "unfinished run with other inputs or options" in err, err
    resumed = run("r.gff3")
    assert not (tmp_path / "r.gff3.parts").exists()
    for a, b in zip(whole, resumed, strict=True):
        assert a.read_bytes() == b.read_bytes(), b.name


# one-line errors --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    return {"lm": tiny_model(root / "lm", "causal", 1, window=128), "k3": random_segmenter(root / "k3", k=3,
                                                                                            window=96),
            "seg": random_segmenter(root / "seg", window=128), **broken_segmenters(root)}


def broken_segmenters(root):
    """A text file given as a checkpoint, a segmenter directory without its weights, and one whose config says
    another head width than its weights have."""
    (root / "notes.ckpt").write_text("not a checkpoint\n")
    no_weights = random_segmenter(root / "no_weights", window=128)
    (no_weights / "model.safetensors").unlink()
    reshaped = random_segmenter(root / "reshaped", window=128)
    config = json.loads((reshaped / "config.json").read_text())
    config["head"]["hidden"] = 8
    (reshaped / "config.json").write_text(json.dumps(config))
    return {"text": root / "notes.ckpt", "no_weights": no_weights, "reshaped": reshaped}


@pytest.mark.parametrize("model,fasta,extra,expected", [
    ("lm", "lambda", [], "not a genomenet segmentation model"),
    ("seg", "missing", [], "no such FASTA file"),
    ("k3", "lambda", ["--window", "100"], "--window 100 must be a positive multiple of the model's k-mer size 3"),
    ("seg", "lambda", ["--regions", "BED"], "chromosome 'chrZ' is not in the FASTA"),
    ("seg", "lambda", ["--classes", "exon,UTR"], "--classes UTR: not classes of this model"),
    ("seg", "lambda", ["--sequence-parallel", "2"], "--sequence-parallel is not supported"),
    ("seg", "lambda", ["--threshold", "1.5"], "threshold 1.5: give a probability in (0, 1]"),
    ("text", "lambda", [], "notes.ckpt: not a genomenet checkpoint or exported model directory (not a PyTorch file)"),
    ("no_weights", "lambda", [], "model.safetensors: not the weights of the segmenter its config describes"),
    ("seg", "lambda", ["--out", "DIR"], "a.gff3 is a directory; give another file name"),
    ("seg", "lambda", ["--out", "TRACK_DIR"], "a.exon.bedGraph is a directory; give another file name"),
    ("reshaped", "lambda", [], "model.safetensors: not the weights of the segmenter its config describes"),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, models, model, fasta, extra, expected) -> None:
    bed = tmp_path / "r.bed"
    bed.write_text("chrZ\t0\t100\n")
    fasta = LAMBDA if fasta == "lambda" else tmp_path / "missing.fa"
    extra = [str(bed) if x == "BED" else x for x in extra]
    out = tmp_path / "o" / "a.gff3"
    out.parent.mkdir()
    in_the_way = {"DIR": out, "TRACK_DIR": out.with_name("a.exon.bedGraph")}.get(extra[-1] if extra else "")
    if in_the_way:   # --out (or one of its tracks) names an existing folder
        in_the_way.mkdir()
        extra = []
    code = main(["annotate", "--model", str(models[model]), "--fasta", str(fasta), "--out", str(out), "--quiet",
                 "--cache-dir", str(tmp_path / "cache"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and err.startswith("genomenet: error: ") and expected in err, err
    assert [p for p in out.parent.iterdir() if p != in_the_way] == [], "something was written"
