"""Labelled regions: windows read on the region's strand, splits that leak no sequence, labels checked line by line."""

from __future__ import annotations

import gzip
import os
import random
import re
import threading
from pathlib import Path

import numpy as np
import pytest
from Bio.Seq import Seq
from conftest import DMEL

from genomenet.data.intervals import Interval, Region, read_bed_regions
from genomenet.data.labels import infer_labels
from genomenet.data.region_datamodule import RegionDataModule, interleaved_order
from genomenet.data.region_windows import WindowSpec, region_tokens
from genomenet.data.splits import SPLITS, SplitConfig, blocks_by_chromosome, split_blocks, split_of, write_split_beds
from genomenet.data.tokenizers import make_tokenizer
from genomenet.errors import ConfigError, GenomenetError, InputFileError

CHROM = "NC_004353.4:1100001-1300000"


@pytest.mark.parametrize("k", [1, 3])
@pytest.mark.parametrize("strand", ["+", "-", "."])
def test_a_region_is_read_5_to_3_on_its_strand(dmel, strand: str, k: int) -> None:
    rng = random.Random(f"{strand}{k}")
    start = rng.randrange(0, 150_000)
    region = Region(CHROM, start, start + rng.randrange(1, 400), "x", strand)
    spec = WindowSpec(999, "centered")
    window = spec.interval(region)
    text = dmel.sequence(CHROM, window.start, window.end)
    expected = str(Seq(text).reverse_complement()) if strand == "-" else text
    tokenizer = make_tokenizer(k)
    assert np.array_equal(region_tokens(dmel, region, spec, tokenizer), tokenizer.encode(expected))


def test_region_mode_adds_flanks_pads_short_regions_and_crops_long_ones_about_their_centre(dmel) -> None:
    tokenizer, spec = make_tokenizer(1), WindowSpec(100, "region", flank=10)
    short = Region(CHROM, 5000, 5030, "x", "+")
    ids = region_tokens(dmel, short, spec, tokenizer)
    assert np.array_equal(ids[:50], tokenizer.encode(dmel.sequence(CHROM, 4990, 5040)))
    assert (ids[50:] == tokenizer.pad_id).all()
    long = Region(CHROM, 5000, 5500, "x", "+")
    assert spec.interval(long) == Interval(CHROM, 5200, 5300)


def test_bases_past_the_chromosome_end_read_as_n(dmel) -> None:
    tokenizer = make_tokenizer(1)
    ids = region_tokens(dmel, Region(CHROM, 0, 1, "x", "+"), WindowSpec(100), tokenizer)
    assert (ids[:50] == tokenizer.n_id).all()
    assert np.array_equal(ids[50:], tokenizer.encode(dmel.sequence(CHROM, 0, 50)))


@pytest.mark.parametrize("by", ["block", "chromosome", "bed"])
def test_no_two_windows_in_different_splits_share_a_base(by: str, tmp_path: Path) -> None:
    lengths, rng = {"a": 1_000_000, "b": 700_000, "c": 300_000}, random.Random(by)
    listed = [f"{c}\t{s}\t{s + rng.randrange(20_000, 50_000)}\t{rng.choice(['train', 'val', 'test'])}"
              for c, n in lengths.items() for s in range(0, n - 50_000, 50_000)]  # gaps between blocks
    cfg = SplitConfig(by=by, block_size=rng.choice([50_000, 100_000]), seed=rng.randrange(100),
                      val_chromosomes=["b"] if by == "chromosome" else [],
                      test_chromosomes=["c"] if by == "chromosome" else [],
                      blocks=str(write_bed(tmp_path, listed)) if by == "bed" else None)
    blocks = blocks_by_chromosome(split_blocks(lengths, cfg))
    spec = WindowSpec(8_000)
    placed: dict[str, list[Interval]] = {"train": [], "val": [], "test": []}
    for _ in range(3000):
        chrom = rng.choice(list(lengths))
        start = rng.randrange(lengths[chrom])
        window = spec.interval(Region(chrom, start, start + 1))
        split = split_of(window, blocks)
        if split is not None:
            placed[split].append(window)
    assert all(placed.values())
    for a, b in [("train", "val"), ("train", "test"), ("val", "test")]:
        for w in placed[a]:
            assert not any(w.chrom == v.chrom and w.start < v.end and v.start < w.end for v in placed[b])
    if by == "bed":  # and a placed window reads only listed bases of its own split
        spans = [line.split("\t") for line in listed]
        for split, windows in placed.items():
            for w in windows:
                inside = [(int(s), int(e)) for c, s, e, name in spans if c == w.chrom and name == split]
                assert any(s <= max(w.start, 0) and min(w.end, lengths[w.chrom]) <= e for s, e in inside)


def test_a_split_bed_places_each_window_in_its_listed_block_and_drops_windows_reading_unlisted_bases(
        tmp_path: Path) -> None:
    bed = write_bed(tmp_path, ["a\t0\t400\ttrain", "b\t0\t300\ttest", "a\t500\t1000\tval"])
    blocks = split_blocks({"a": 1000, "b": 300, "c": 50}, SplitConfig(by="bed", blocks=str(bed)))
    by_chrom = blocks_by_chromosome(blocks)
    assert split_of(Interval("a", 100, 300), by_chrom) == "train"
    assert split_of(Interval("a", 600, 1100), by_chrom) == "val"  # past the chromosome's end: padding
    assert split_of(Interval("b", -50, 100), by_chrom) == "test"
    assert split_of(Interval("a", 350, 450), by_chrom) is None  # reads 400-450, listed nowhere
    assert split_of(Interval("a", 300, 600), by_chrom) is None
    assert split_of(Interval("c", 0, 50), by_chrom) is None  # a chromosome the BED leaves out
    write_split_beds(blocks, tmp_path / "out")
    assert (tmp_path / "out" / "split_blocks.bed").read_text().split("\n")[0] == "a\t0\t400\ttrain"
    assert (tmp_path / "out" / "test.bed").read_text() == "b\t0\t300\n"


@pytest.mark.parametrize(("lines", "message"), [
    (["a\t0\t400\ttrain", "a\t300\t500\ttest"], "line 2: block a:300-500 overlaps another block"),
    (["a\t0\t400\ttraining"], "line 1: the 4th column must be train, val or test, got 'training'"),
    (["z\t0\t400\ttrain"], "line 1: chromosome 'z' is not in the FASTA"),
])
def test_a_bad_split_bed_is_one_error_naming_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(InputFileError, match=message):
        split_blocks({"a": 1000}, SplitConfig(by="bed", blocks=str(write_bed(tmp_path, lines))))


def test_bed_mode_needs_its_blocks() -> None:
    with pytest.raises(ConfigError, match="split.blocks"):
        SplitConfig(by="bed")


def test_block_split_holds_out_a_share_of_every_chromosome() -> None:
    blocks = split_blocks({"a": 2_000_000, "b": 1_000_000}, SplitConfig(block_size=100_000, test_fraction=0.2))
    for chrom, n in (("a", 4), ("b", 2)):
        assert sum(b.split == "test" for b in blocks if b.chrom == chrom) == n


def write_bed(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "labels.bed"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(("lines", "message"), [
    (["c\t0\t10\tpos", "c\t20\t30"], "line 2: no label"),
    (["c\t0\t10\tpos", "c\t20\t30\t\t0\t+"], "line 2: no label"),
    (["# header", "c\t0\t10\t1", "c\t20\t30\tpos"], "line 3: label 'pos' is a word but line 2's '1' is a number"),
    (["c\t0\t10\thi,plus", "c\t20\t30\t0", "c\t30\t40\t1"], "line 2: label '0' is a number but line 1's 'hi'"),
    (["c\t0\t10\t1", "c\t20\t30\tnan"], "line 2: label 'nan' is a word"),
    (["c\t0\t10\tpos", "c\t20\t30\tpos"], "a classifier needs two classes"),
    (["c\t0\t10\t1", "c\t20\t30\t0", "c\t30\t40\t1.0"], "line 3: label '1.0' is the number of line 1's '1'"),
])
def test_bad_labels_are_one_error_naming_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    path = write_bed(tmp_path, lines)
    with pytest.raises(InputFileError, match=message):
        infer_labels(path, read_bed_regions(path), "auto")


def test_label_kind_follows_the_labels(tmp_path: Path) -> None:
    kinds = {}
    for name, labels in {"binary": ["a", "b"], "multiclass": ["a", "b", "c"], "multilabel": ["a,b", "b"]}.items():
        path = write_bed(tmp_path, [f"c\t{i}\t{i + 1}\t{label}" for i, label in enumerate(labels)])
        kinds[name] = infer_labels(path, read_bed_regions(path), "auto")
    assert {name: ls.kind for name, ls in kinds.items()} == {n: n for n in kinds}
    assert kinds["multilabel"].target("a,b").tolist() == [1, 1]
    assert kinds["multiclass"].target("c").tolist() == [2]


def test_spaces_about_labels_are_not_part_of_them(tmp_path: Path) -> None:
    path = write_bed(tmp_path, ["c\t0\t1\ta, b", "c\t1\t2\tb"])
    labels = infer_labels(path, read_bed_regions(path), "auto")
    assert labels.classes == ("a", "b") and labels.target("a, b").tolist() == [1, 1]


def data_module(tmp_path: Path, lines: list[str], **kwargs) -> RegionDataModule:
    kwargs = {"context_length": 200, "cache_dir": str(tmp_path / "cache")} | kwargs
    return RegionDataModule(str(DMEL), str(write_bed(tmp_path, lines)), **kwargs)


@pytest.mark.parametrize(("lines", "error", "message"), [
    (["chr4\t10\t20\ta"], InputFileError, "line 1: chromosome 'chr4' is not in the FASTA"),
    ([f"{CHROM}\t10\t300000\ta"], InputFileError, "line 1: interval .* is outside its chromosome"),
    ([f"{CHROM}\t10\t20\ta\t+", f"{CHROM}\t30\t40\tb\t-"], InputFileError,  # BED5 would read both as '+'
     "line 1: '\\+' in column 5, the score: the strand goes in column 6"),
    ([f"{CHROM}\t{s}\t{s + 1}\t{'a' if s < 100_000 else 'b'}" for s in range(1000, 199_000, 1000)], ConfigError,
     "leaves class '[ab]' with no (train|test) example"),
])
def test_regions_the_data_cannot_hold_fail_at_setup_with_one_line(tmp_path: Path, lines, error, message) -> None:
    split = SplitConfig(by="block", block_size=50_000, test_fraction=0.25, val_fraction=0.25, seed=0)
    dm = data_module(tmp_path, lines, split=split)
    with pytest.raises(error, match=message) as caught:
        dm.setup()
    assert isinstance(caught.value, GenomenetError) and "\n" not in str(caught.value)


def test_a_split_without_validation_regions_is_refused(tmp_path: Path) -> None:
    lines = [f"{CHROM}\t{s}\t{s + 1}\t{'ab'[s // 1000 % 2]}" for s in range(500, 199_000, 1000)]
    dm = data_module(tmp_path, lines, split=SplitConfig(block_size=20_000, val_fraction=0.0))
    with pytest.raises(ConfigError, match="no validation region"):
        dm.setup()


def test_the_split_is_written_into_the_run(tmp_path: Path) -> None:
    lines = [f"{CHROM}\t{s}\t{s + 1}\t{'ab'[s // 1000 % 2]}\t0\t{'+-'[s // 2000 % 2]}"
             for s in range(500, 199_000, 1000)]
    dm = data_module(tmp_path, lines, split=SplitConfig(block_size=20_000, test_fraction=0.3, val_fraction=0.1))
    dm.setup()
    rows = dm.write_split(tmp_path / "run")
    table = [line.split("\t") for line in rows.read_text().splitlines()[1:]]
    kept = sum(len(dm.splits[s].regions) for s in ("train", "val", "test"))
    assert len(table) == kept and kept + sum(dm.dropped.values()) == len(lines)
    assert {row[-1] for row in table} == {"train", "val", "test"}
    assert (tmp_path / "run" / "split_blocks.bed").is_file()


def test_any_prefix_of_the_validation_order_holds_every_class_in_proportion() -> None:
    """A limited validation pass (trainer.limit_val_batches) reads a prefix: in file order that can be one class."""
    targets = np.repeat(np.eye(3, dtype=np.float32), [60, 30, 10], axis=0)    # sorted by class, 60/30/10
    order = interleaved_order(targets)
    assert sorted(order) == list(range(100)) and not np.array_equal(order, np.arange(100))
    for n in (10, 20, 50):
        counts = targets[order[:n]].sum(0)
        np.testing.assert_allclose(counts, [0.6 * n, 0.3 * n, 0.1 * n], atol=1)
    assert interleaved_order(np.zeros((0, 3))).size == 0


def test_the_validation_loader_reads_every_window_once_in_the_interleaved_order(tmp_path: Path) -> None:
    lines = [f"{CHROM}\t{s}\t{s + 1}\t{'ab'[s // 10_000 % 2]}" for s in range(500, 199_000, 1000)]
    dm = data_module(tmp_path, lines, split=SplitConfig(block_size=20_000, test_fraction=0.3, val_fraction=0.2))
    dm.setup()
    val = dm.splits["val"]
    items = list(dm.dataloader("val").dataset)
    assert [item["index"] for item in items] == list(interleaved_order(val.targets))
    for item in items:
        assert np.array_equal(item["input_ids"].numpy(), val.tokens[item["index"]])
    assert [item["index"] for item in dm.dataloader("test").dataset] == list(range(len(dm.splits["test"].regions)))


def test_shifted_training_windows_are_the_genome_moved_by_whole_tokens(tmp_path: Path, dmel) -> None:
    lines = [f"{CHROM}\t{s}\t{s + 1}\t{'ab'[s // 1000 % 2]}\t0\t{'+-'[s // 2000 % 2]}"
             for s in range(500, 199_000, 997)]
    dm = data_module(tmp_path, lines, context_length=120, kmer_size=3, shift=30,
                     split=SplitConfig(block_size=20_000, test_fraction=0.3, val_fraction=0.1))
    dm.setup()
    tokenizer = make_tokenizer(3)
    seen = set()
    for _ in range(40):
        item = dm.dataloader("train", shuffle=True).dataset[0]
        region = dm.splits["train"].regions[0]
        assert len(item["input_ids"]) == 40
        for offset in range(-30, 31, 3):
            window = WindowSpec(120).interval(Region(region.chrom, region.start + offset, region.end + offset))
            text = dmel.sequence(CHROM, window.start, window.end)
            text = str(Seq(text).reverse_complement()) if region.strand == "-" else text
            if np.array_equal(item["input_ids"].numpy(), tokenizer.encode(text)):
                seen.add(offset)
                break
        else:
            raise AssertionError("a shifted window is not the genome moved by a whole number of tokens")
    assert len(seen) > 3
    centred = dm.window_tokens("test")[0]
    region = dm.splits["test"].regions[0]
    assert np.array_equal(centred, region_tokens(dmel, region, WindowSpec(120), tokenizer))


def test_track_and_browser_lines_are_skipped_but_contigs_named_like_them_are_read(tmp_path: Path) -> None:
    path = tmp_path / "r.bed"
    path.write_text("browser position chr1:1-100\ntrack name=x\n# note\ntrack1\t5\t9\ta\nbrowser_2\t1\t3\tb\n")
    regions = read_bed_regions(path, {"track1": 50, "browser_2": 50})
    assert [(r.chrom, r.start, r.name) for r in regions] == [("track1", 5, "a"), ("browser_2", 1, "b")]


@pytest.mark.parametrize("compress", [False, True])
def test_a_bed_from_a_pipe_is_read_like_the_file(tmp_path: Path, compress: bool) -> None:
    """`--regions <(zcat regions.bed.gz)` hands over a pipe: it is no regular file and reads only once."""
    body = b"c1\t5\t9\ta\t0\t-\r\nc1\t20\t30\tb\n"
    fifo = tmp_path / "regions.pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(gzip.compress(body) if compress else body), daemon=True)
    writer.start()
    regions = read_bed_regions(fifo, {"c1": 50})
    writer.join()
    assert [(r.start, r.end, r.name, r.strand) for r in regions] == [(5, 9, "a", "-"), (20, 30, "b", "+")]


def test_an_annotation_from_a_pipe_is_read_like_the_file(tmp_path: Path) -> None:
    from genomenet.data.annotation import read_annotation

    body = gzip.compress(b"##gff-version 3\nc1\tt\tgene\t11\t20\t.\t-\t.\tID=g\n")
    fifo = tmp_path / "genes.pipe"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(body), daemon=True)
    writer.start()
    labels = read_annotation(fifo, {"c1": 50})
    writer.join()
    gene = labels.labels("c1", 0, 50)[:, labels.classes.index("gene")]
    assert np.flatnonzero(gene).tolist() == list(range(10, 20))


@pytest.mark.parametrize("kind", ["BED", "GFF3/GTF"])
def test_corrupt_gzip_data_is_one_line_naming_the_file(tmp_path: Path, kind: str) -> None:
    from genomenet.data.annotation import read_annotation

    body = b"c1\t5\t9\ta\n" if kind == "BED" else b"c1\tt\tgene\t11\t20\t.\t-\t.\tID=g\n"
    packed = gzip.compress(body * 20, mtime=0)
    path = tmp_path / "corrupt.gz"
    path.write_bytes(packed[:10] + b"\xff" * 8 + packed[18:])   # the deflate stream broken, not cut short
    with pytest.raises(InputFileError, match=f"corrupt.gz: not a readable {re.escape(kind)} text file"):
        read_bed_regions(path) if kind == "BED" else read_annotation(path, {"c1": 50})


def test_a_folder_given_for_a_bed_or_an_annotation_is_named_a_folder(tmp_path: Path) -> None:
    from genomenet.data.annotation import read_annotation

    with pytest.raises(InputFileError, match="a folder, not a BED file"):
        read_bed_regions(tmp_path)
    with pytest.raises(InputFileError, match="a folder, not an annotation file"):
        read_annotation(tmp_path, {"chr1": 100})
    with pytest.raises(InputFileError, match="no such BED file"):
        read_bed_regions(tmp_path / "missing.bed")


def test_regions_shorter_than_one_kmer_give_every_window_a_token(tmp_path: Path) -> None:
    # 2-base sites, region mode without flanks, k = 3: each window used to be all padding
    lines = [f"{CHROM}\t{s}\t{s + 2}\t{'ab'[s // 1000 % 2]}" for s in range(500, 199_000, 1000)]
    dm = data_module(tmp_path, lines, mode="region", flank=0, kmer_size=3,
                     split=SplitConfig(block_size=20_000, test_fraction=0.3, val_fraction=0.1))
    dm.setup()
    for split in dm.splits.values():
        assert (split.spans[:, 1] - split.spans[:, 0] == 1).all() and (split.spans[:, 0] == 0).all()
        assert (split.tokens[:, 0] != dm.tokenizer.pad_id).all()


def test_every_frame_is_the_window_moved_one_base_and_training_draws_one_of_them(tmp_path: Path, dmel) -> None:
    lines = [f"{CHROM}\t{s}\t{s + 1}\t{'ab'[s // 1000 % 2]}\t0\t{'+-'[s // 2000 % 2]}"
             for s in range(500, 199_000, 997)]
    dm = data_module(tmp_path, lines, context_length=120, kmer_size=3, frames="all",
                     split=SplitConfig(block_size=20_000, test_fraction=0.3, val_fraction=0.1))
    dm.setup()
    tokenizer = make_tokenizer(3)
    region, rows = dm.splits["test"].regions[0], dm.window_tokens("test")[0]
    assert rows.shape == (3, 40)
    for offset in range(3):   # moved along the forward strand, then read 5'->3' on the region's strand
        window = WindowSpec(120).interval(Region(region.chrom, region.start + offset, region.end + offset))
        text = dmel.sequence(CHROM, window.start, window.end)
        text = str(Seq(text).reverse_complement()) if region.strand == "-" else text
        assert np.array_equal(rows[offset], tokenizer.encode(text))
        # the token holding the region's one base, in this frame's reading order
        base = region.start - window.start if region.strand != "-" else window.end - 1 - region.start
        assert list(dm.window_spans("test")[0, offset]) == [base // 3, base // 3 + 1]
    assert dm.dataloader("val").dataset[0]["input_ids"].shape == (3, 40)   # evaluation reads every frame
    train_rows, train_spans = dm.window_tokens("train")[0], dm.window_spans("train")[0]
    drawn = set()
    for _ in range(30):
        item = dm.dataloader("train", shuffle=True).dataset[0]
        frame = next(f for f in range(3) if np.array_equal(item["input_ids"].numpy(), train_rows[f]))
        assert np.array_equal(item["region"].numpy(), train_spans[frame])   # the drawn frame's own span
        drawn.add(frame)
    assert drawn == {0, 1, 2}
    dm.train_frames = "all"
    item = dm.dataloader("train", shuffle=True).dataset[0]
    assert np.array_equal(item["input_ids"].numpy(), train_rows) and np.array_equal(item["region"].numpy(), train_spans)


def test_a_window_whose_later_frames_reach_into_another_split_is_dropped(tmp_path: Path) -> None:
    blocks = tmp_path / "blocks.bed"
    blocks.write_text(f"{CHROM}\t0\t100000\ttrain\n{CHROM}\t100000\t150000\ttest\n{CHROM}\t150000\t200000\tval\n")
    # the 120-base window about 99,940 ends at the train/test boundary: frame 3 reads 3 bases of test
    lines = [f"{CHROM}\t{s}\t{s + 1}\t{'ab'[i % 2]}" for i, s in enumerate(range(1000, 199_000, 5003))]
    lines.append(f"{CHROM}\t99940\t99941\ta")
    # in region mode the window is the region and its flanks: [99,890, 100,000) for this one
    lines.append(f"{CHROM}\t99900\t99990\tb")
    split = SplitConfig(by="bed", blocks=str(blocks))
    for mode in ("centered", "region"):
        one = data_module(tmp_path, lines, context_length=120, kmer_size=4, split=split, mode=mode, flank=10)
        every = data_module(tmp_path, lines, context_length=120, kmer_size=4, split=split, mode=mode, flank=10,
                            frames="all")
        one.setup()
        every.setup()
        edge = 99940 if mode == "centered" else 99900
        assert any(r.start == edge for r in one.splits["train"].regions)
        assert not any(r.start == edge for s in SPLITS for r in every.splits[s].regions)


def test_frames_other_than_one_or_all_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data.frames='three' must be one or all"):
        data_module(tmp_path, [f"{CHROM}\t10\t20\ta"], frames="three")
