"""Gene decoding: per-base class probabilities painted from known genes decode back to those genes (coordinates,
strands, parents, CDS phases), through noise and short spikes, and the GFF3 written parses back."""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from genomenet.downstream.gene_decoding import DecodeOptions, Feature, GFF3Writer, decode_features, runs

CLASSES = ("gene", "exon", "CDS", "intron", "splice_donor", "splice_acceptor", "intergenic")
LOW, HIGH = 0.02, 0.98


@dataclass
class TrueGene:
    strand: str
    exons: list[tuple[int, int]]
    cds: list[tuple[int, int]]


def paint(genes: list[TrueGene], length: int, classes=CLASSES) -> np.ndarray:
    """A clean probability track, (length, len(classes)): HIGH where a class holds, LOW elsewhere. Splice sites are
    the 2 intronic bases at each end of an intron (donor at the 5' end of the intron in transcript orientation);
    UTRs are the exonic bases 5' and 3' of the CDS."""
    probs = np.full((length, len(classes)), LOW)
    column = {name: j for j, name in enumerate(classes)}

    def fill(name: str, start: int, end: int) -> None:
        if name in column:
            probs[start:end, column[name]] = HIGH

    fill("intergenic", 0, length)
    for g in genes:
        start, end = g.exons[0][0], g.exons[-1][1]
        fill("gene", start, end)
        if "intergenic" in column:
            probs[start:end, column["intergenic"]] = LOW
        for s, e in g.exons:
            fill("exon", s, e)
        for s, e in g.cds:
            fill("CDS", s, e)
        for (_, a), (b, _) in zip(g.exons[:-1], g.exons[1:]):
            fill("intron", a, b)
            low, high = (a, a + 2), (b - 2, b)
            fill("splice_donor", *(low if g.strand == "+" else high))
            fill("splice_acceptor", *(high if g.strand == "+" else low))
        if g.cds:
            before, after = ("five_prime_UTR", "three_prime_UTR")[:: 1 if g.strand == "+" else -1]
            for s, e in g.exons:
                fill(before, s, min(e, g.cds[0][0]))
                fill(after, max(s, g.cds[-1][1]), e)
    return probs


def summary(features: list[Feature]) -> list[tuple]:
    """Everything but the score: (type, start, end, strand, id, parent, phase)."""
    return [(f.type, f.start, f.end, f.strand, f.id, f.parent, f.phase) for f in features]


# On a 20 kb contig: a '+' gene with 3 exons and CDS (5' and 3' UTR), a '-' gene with 2 exons, a single-exon gene.
# CDS lengths 5' to 3': 299, 650, 500, so phases 0, (3 - 299 % 3) % 3 = 1, (3 - 949 % 3) % 3 = 2.
TRUTH = [
    TrueGene("+", [(1000, 1400), (2000, 2650), (3200, 4000)], [(1101, 1400), (2000, 2650), (3200, 3700)]),
    TrueGene("-", [(6000, 6500), (7300, 8000)], []),
    TrueGene(".", [(12000, 13000)], []),
]
EXPECTED = [
    ("gene", 1000, 4000, "+", "gene1", None, None),
    ("mRNA", 1000, 4000, "+", "gene1.t1", "gene1", None),
    ("exon", 1000, 1400, "+", "gene1.t1.exon1", "gene1.t1", None),
    ("CDS", 1101, 1400, "+", "gene1.t1.cds1", "gene1.t1", 0),
    ("exon", 2000, 2650, "+", "gene1.t1.exon2", "gene1.t1", None),
    ("CDS", 2000, 2650, "+", "gene1.t1.cds2", "gene1.t1", 1),
    ("exon", 3200, 4000, "+", "gene1.t1.exon3", "gene1.t1", None),
    ("CDS", 3200, 3700, "+", "gene1.t1.cds3", "gene1.t1", 2),
    ("gene", 6000, 8000, "-", "gene2", None, None),
    ("mRNA", 6000, 8000, "-", "gene2.t1", "gene2", None),
    ("exon", 6000, 6500, "-", "gene2.t1.exon2", "gene2.t1", None),  # exons are numbered 5' to 3'
    ("exon", 7300, 8000, "-", "gene2.t1.exon1", "gene2.t1", None),
    ("gene", 12000, 13000, ".", "gene3", None, None),  # one exon, no UTR classes: no strand evidence
    ("mRNA", 12000, 13000, ".", "gene3.t1", "gene3", None),
    ("exon", 12000, 13000, ".", "gene3.t1.exon1", "gene3.t1", None),
]
LENGTH = 20_000


def test_runs_are_the_true_runs_with_short_gaps_bridged() -> None:
    seed = np.random.SeedSequence().entropy
    rng = np.random.default_rng(seed)
    for _ in range(50):
        mask = rng.random(int(rng.integers(0, 60))) < rng.random()
        max_gap = int(rng.integers(0, 4))
        expected: list[list[int]] = []
        for i in np.flatnonzero(mask).tolist():  # the naive reference: extend the last run or start a new one
            if expected and i - expected[-1][1] <= max_gap:
                expected[-1][1] = i + 1
            else:
                expected.append([i, i + 1])
        assert runs(mask, max_gap) == [tuple(r) for r in expected], f"seed {seed}"
    assert runs(np.ones(5, bool)) == [(0, 5)] and runs(np.zeros(0, bool)) == []


def test_clean_track_decodes_to_the_known_genes_exactly() -> None:
    features = decode_features("chr1", paint(TRUTH, LENGTH), CLASSES)
    assert summary(features) == EXPECTED
    assert all(f.seqid == "chr1" for f in features)
    assert [f.score for f in features] == pytest.approx([HIGH] * len(EXPECTED))


def test_offset_shifts_every_coordinate() -> None:
    probs = paint(TRUTH, LENGTH)
    features = decode_features("chr1", probs[500:], CLASSES, offset=500)
    assert summary(features) == EXPECTED


def test_without_a_gene_class_genes_are_runs_of_exon_or_intron() -> None:
    classes = CLASSES[1:]
    features = decode_features("chr1", paint(TRUTH, LENGTH, classes), classes)
    assert summary(features) == EXPECTED


def test_noise_and_short_spikes_leave_genes_and_exons_unchanged() -> None:
    rng = np.random.default_rng(0)
    probs = paint(TRUTH, LENGTH)
    column = {name: j for j, name in enumerate(CLASSES)}
    for start in (1600, 2800, 6900, 9000, 15000):  # exon spikes 9 bases long (< min_exon) in introns and between genes
        probs[start:start + 9, column["exon"]] = HIGH
    for start in (5000, 16000):  # gene spikes 99 bases long (< min_gene) between genes
        probs[start:start + 99, column["gene"]] = HIGH
    for start in (2200, 7000, 12500):  # dips of p(gene) 8 bases long (<= max_gap) inside genes
        probs[start:start + 8, column["gene"]] = LOW
    probs = np.clip(probs + rng.normal(0, 0.1, probs.shape), 0, 1)  # moderate: 4.8 sd between HIGH and threshold

    features = decode_features("chr1", probs, CLASSES, options=DecodeOptions(max_gap=10))
    assert summary(features) == EXPECTED
    assert all(0.9 < f.score < 1 for f in features)  # means of the noisy (clipped) probabilities
    without_bridging = decode_features("chr1", probs, CLASSES)
    assert len([f for f in without_bridging if f.type == "gene"]) > 3  # the dips do split genes when not bridged
    no_min_exon = decode_features("chr1", probs, CLASSES, options=DecodeOptions(max_gap=10, min_exon=1))
    assert len([f for f in no_min_exon if f.type == "exon"]) == 6 + 3  # the spikes in introns would be exons


def test_cds_phases_follow_transcript_order_on_both_strands() -> None:
    plus = TrueGene("+", [(100, 160), (300, 380), (500, 600)], [(110, 160), (300, 380), (500, 530)])
    minus = TrueGene("-", [(1100, 1160), (1300, 1380), (1500, 1600)], [(1110, 1160), (1300, 1380), (1500, 1531)])
    features = decode_features("chr1", paint([plus, minus], 2000), CLASSES)
    cds = [(f.start, f.end, f.strand, f.id, f.phase) for f in features if f.type == "CDS"]
    assert cds == [
        # '+': 5' to 3' is low to high. Lengths 50, 80, 30: phases 0, (3 - 50 % 3) % 3 = 1, (3 - 130 % 3) % 3 = 2.
        (110, 160, "+", "gene1.t1.cds1", 0),
        (300, 380, "+", "gene1.t1.cds2", 1),
        (500, 530, "+", "gene1.t1.cds3", 2),
        # '-': 5' to 3' is high to low. Lengths 31, 80, 50: phases 0, (3 - 31 % 3) % 3 = 2, (3 - 111 % 3) % 3 = 0.
        (1110, 1160, "-", "gene2.t1.cds3", 0),
        (1300, 1380, "-", "gene2.t1.cds2", 2),
        (1500, 1531, "-", "gene2.t1.cds1", 0),
    ]


def test_utr_classes_give_single_exon_genes_a_strand() -> None:
    genes = [TrueGene("+", [(1000, 2000)], [(1100, 1900)]), TrueGene("-", [(3000, 4000)], [(3100, 3900)])]
    classes = (*CLASSES, "five_prime_UTR", "three_prime_UTR")
    strands = [f.strand for f in decode_features("chr1", paint(genes, 5000, classes), classes) if f.type == "gene"]
    assert strands == ["+", "-"]
    strands = [f.strand for f in decode_features("chr1", paint(genes, 5000), CLASSES) if f.type == "gene"]
    assert strands == [".", "."]


def test_background_splice_probabilities_give_no_strand() -> None:
    probs = paint(TRUTH[:2], LENGTH)
    probs[:, [CLASSES.index("splice_donor"), CLASSES.index("splice_acceptor")]] = LOW
    assert [f.strand for f in decode_features("chr1", probs, CLASSES) if f.type == "gene"] == [".", "."]


def test_gene_calls_without_exon_calls_are_dropped_and_without_an_exon_class_only_genes_are_called() -> None:
    probs = paint(TRUTH, LENGTH)
    probs[1000:4000, CLASSES.index("exon")] = LOW
    assert [f.id for f in decode_features("chr1", probs, CLASSES) if f.type == "gene"] == ["gene1", "gene2"]
    only_genes = decode_features("chr1", probs[:, [0]], ["gene"])
    assert [(f.type, f.start, f.end, f.strand) for f in only_genes] == [
        ("gene", 1000, 4000, "."), ("gene", 6000, 8000, "."), ("gene", 12000, 13000, ".")]


def test_empty_or_background_tracks_give_no_features() -> None:
    assert decode_features("chr1", np.zeros((0, len(CLASSES))), CLASSES) == []
    assert decode_features("chr1", np.full((LENGTH, len(CLASSES)), LOW), CLASSES) == []


def test_probs_that_do_not_match_the_classes_raise_naming_the_shapes() -> None:
    with pytest.raises(ValueError, match=r"shape \(100, 3\) but 4 classes"):
        decode_features("chr1", np.zeros((100, 3)), ["gene", "exon", "CDS", "intron"])
    with pytest.raises(ValueError, match=r"shape \(100,\)"):
        decode_features("chr1", np.zeros(100), ["gene"])
    with pytest.raises(ValueError, match="nothing to call genes from"):
        decode_features("chr1", np.zeros((100, 1)), ["CDS"])
    with pytest.raises(ValueError, match="threshold"):
        DecodeOptions(threshold=0)
    with pytest.raises(ValueError, match="threshold 1.5 of class gene"):
        DecodeOptions(class_thresholds={"gene": 1.5})


def test_a_class_threshold_takes_the_place_of_the_threshold_for_that_class_only() -> None:
    probs = paint(TRUTH, LENGTH)
    probs[:, CLASSES.index("gene")] *= 0.6                                   # gene bases at 0.59, exons at 0.98
    assert summary(decode_features("chr1", probs, CLASSES)) == EXPECTED
    assert decode_features("chr1", probs, CLASSES, options=DecodeOptions(class_thresholds={"gene": 0.7})) == []
    assert decode_features("chr1", probs, CLASSES, options=DecodeOptions(threshold=0.7)) == []
    lowered = DecodeOptions(threshold=0.7, class_thresholds={"gene": 0.5})   # exons still called at 0.7
    assert summary(decode_features("chr1", probs, CLASSES, options=lowered)) == EXPECTED
    no_exons = DecodeOptions(class_thresholds={"gene": 0.5, "exon": 0.99})  # genes without exon calls are dropped
    assert decode_features("chr1", probs, CLASSES, options=no_exons) == []


def read_gff3(path: Path) -> tuple[list[str], list[list[str]]]:
    """Directive lines and feature rows (9 columns each); checks what every GFF3 reader relies on."""
    directives, rows, ids = [], [], set()
    for line in path.read_text().splitlines():
        if line.startswith("#"):
            directives.append(line)
            continue
        row = line.split("\t")
        assert len(row) == 9, line
        start, end = int(row[3]), int(row[4])
        assert 1 <= start <= end, line
        attributes = dict(item.split("=") for item in row[8].split(";"))
        assert attributes["ID"] not in ids, f"duplicate ID: {line}"
        assert attributes.get("Parent") in ids | {None}, f"Parent not an earlier ID: {line}"
        assert (row[7] in "012") if row[2] == "CDS" else row[7] == ".", line
        ids.add(attributes["ID"])
        rows.append(row)
    return directives, rows


def test_gff3_is_one_based_with_unique_ids_across_writes_and_parents_before_children(tmp_path: Path) -> None:
    probs = paint(TRUTH, LENGTH)
    out = tmp_path / "genes.gff3"
    with GFF3Writer(out, {"chr1": LENGTH, "chr2": LENGTH}) as writer:
        writer.write(decode_features("chr1", probs, CLASSES))
        writer.write(decode_features("chr2", probs, CLASSES))
        assert not out.exists()  # appears whole, on close
    directives, rows = read_gff3(out)
    assert directives == ["##gff-version 3", "##sequence-region chr1 1 20000", "##sequence-region chr2 1 20000"]
    assert len(rows) == 2 * len(EXPECTED)
    assert rows[0] == ["chr1", "genomenet", "gene", "1001", "4000", "0.980", "+", ".", "ID=gene1"]
    assert rows[3] == ["chr1", "genomenet", "CDS", "1102", "1400", "0.980", "+", "0",
                       "ID=gene1.t1.cds1;Parent=gene1.t1"]
    second = [row for row in rows if row[0] == "chr2"]
    assert [row[8] for row in second[:3]] == ["ID=gene4", "ID=gene4.t1;Parent=gene4",
                                              "ID=gene4.t1.exon1;Parent=gene4.t1"]
    for row, (kind, start, end, strand, *_rest) in zip(second, EXPECTED):
        assert (row[2], int(row[3]), int(row[4]), row[6]) == (kind, start + 1, end, strand)


def test_gff3_writer_rejects_features_outside_the_contig_and_leaves_no_file(tmp_path: Path) -> None:
    out = tmp_path / "genes.gff3"
    features = decode_features("chr1", paint(TRUTH, LENGTH), CLASSES, offset=10_000)  # ends past 20 kb
    with pytest.raises(ValueError, match="check the offset"), GFF3Writer(out, {"chr1": LENGTH}) as writer:
        writer.write(features)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(shutil.which("gffread") is None, reason="gffread is not on PATH")
def test_gffread_reads_the_transcripts_back(tmp_path: Path) -> None:
    out = tmp_path / "genes.gff3"
    with GFF3Writer(out, {"chr1": LENGTH}) as writer:
        writer.write(decode_features("chr1", paint(TRUTH, LENGTH), CLASSES))
    result = subprocess.run(["gffread", str(out), "-T", "-o", "-"], capture_output=True, text=True, check=True)
    cds = [line.split("\t") for line in result.stdout.splitlines() if "\tCDS\t" in line]
    assert [(int(c[3]), int(c[4]), c[7]) for c in cds] == [(1102, 1400, "0"), (2001, 2650, "1"), (3201, 3700, "2")]


@pytest.mark.slow
def test_thirty_million_bases_decode_in_seconds() -> None:
    period, copies = 20_000, 1_500  # the truth contig tiled: 30 Mb, 4,500 genes
    classes = ("gene", "exon", "splice_donor")
    probs = np.tile(paint(TRUTH, period, classes).astype(np.float32), (copies, 1))  # (30e6, 3), 360 MB
    began = time.perf_counter()
    features = decode_features("chr1", probs, classes)
    elapsed = time.perf_counter() - began
    genes = [f for f in features if f.type == "gene"]
    assert len(genes) == 3 * copies and genes[-1].start == (copies - 1) * period + 12_000
    assert [g.strand for g in genes[:3]] == ["+", "-", "."]
    assert elapsed < 60, f"{elapsed:.1f} s"
