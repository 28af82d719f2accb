"""Per-base annotation labels: a hand-labelled toy genome in GFF3, GTF and BED, errors, and real annotations."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from genomenet.data.annotation import CORE_CLASSES, BaseLabels, read_annotation, read_bed_tracks
from genomenet.errors import InputFileError

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
ANNOTATIONS, GENOMES = SHARED / "annotations", SHARED / "genomes"
TAIR10_GFF, TAIR10_FASTA = ANNOTATIONS / "tair10_chr1.gff.gz", GENOMES / "tair10_chr1.fna.gz"
DM6_GFF, DM6_FASTA = ANNOTATIONS / "dm6_chr4.gff.gz", GENOMES / "drosophila_chr4" / "d_melanogaster_chr4.fna.gz"
HG19_GENES, HG19_EXONS = ANNOTATIONS / "hg19_refseqgene.bed.gz", ANNOTATIONS / "hg19_refseqexon.bed.gz"
CHR20_FASTA = GENOMES / "grch37_chr20.fa.gz"
needs = lambda *paths: pytest.mark.skipif(not all(p.exists() for p in paths), reason="shared annotation data absent")

# A 60 bp contig. g1 (+): transcripts t1 (exons 3-8, 13-17, 22-26; CDS 6-24) and t1b (exons 3-8, 22-26, non-coding).
# g2 (-): t2 (exons 53-55, 41-48, 31-36 in transcript order; CDS 46 down to 34). 1-based, inclusive.
GFF3 = """\
##gff-version 3
# a comment
chr1\ttoy\tgene\t3\t26\t.\t+\t.\tID=g1
chr1\ttoy\tmRNA\t3\t26\t.\t+\t.\tID=t1;Parent=g1
chr1\ttoy\tmRNA\t3\t26\t.\t+\t.\tID=t1b;Parent=g1
chr1\ttoy\texon\t3\t8\t.\t+\t.\tParent=t1,t1b
chr1\ttoy\texon\t13\t17\t.\t+\t.\tParent=t1
chr1\ttoy\texon\t22\t26\t.\t+\t.\tParent=t1,t1b
chr1\ttoy\tCDS\t6\t8\t.\t+\t0\tID=p1;Parent=t1
chr1\ttoy\tCDS\t13\t17\t.\t+\t0\tID=p1;Parent=t1
chr1\ttoy\tCDS\t22\t24\t.\t+\t1\tID=p1;Parent=t1
chr1\ttoy\tgene\t31\t55\t.\t-\t.\tID=g2
chr1\ttoy\tmRNA\t31\t55\t.\t-\t.\tID=t2;Parent=g2
chr1\ttoy\texon\t53\t55\t.\t-\t.\tParent=t2
chr1\ttoy\texon\t41\t48\t.\t-\t.\tParent=t2
chr1\ttoy\texon\t31\t36\t.\t-\t.\tParent=t2
chr1\ttoy\tfive_prime_UTR\t53\t55\t.\t-\t.\tParent=t2
chr1\ttoy\tfive_prime_UTR\t47\t48\t.\t-\t.\tParent=t2
chr1\ttoy\tCDS\t41\t46\t.\t-\t0\tID=p2;Parent=t2
chr1\ttoy\tCDS\t34\t36\t.\t-\t0\tID=p2;Parent=t2
chr1\ttoy\tthree_prime_UTR\t31\t33\t.\t-\t.\tParent=t2
##FASTA
>chr1
ACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGTACGT
"""

# The same genes as a GTF: no gene lines, CDS without the stop codon, generic UTR lines (as GENCODE writes them).
GTF = """\
chr1\ttoy\ttranscript\t3\t26\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\texon\t3\t8\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\texon\t13\t17\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\texon\t22\t26\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\tUTR\t3\t5\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\tCDS\t6\t8\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\tstart_codon\t6\t8\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\tCDS\t13\t17\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\tstop_codon\t22\t24\t.\t+\t0\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\tUTR\t25\t26\t.\t+\t.\tgene_id "g1"; transcript_id "t1";
chr1\ttoy\ttranscript\t3\t26\t.\t+\t.\tgene_id "g1"; transcript_id "t1b";
chr1\ttoy\texon\t3\t8\t.\t+\t.\tgene_id "g1"; transcript_id "t1b";
chr1\ttoy\texon\t22\t26\t.\t+\t.\tgene_id "g1"; transcript_id "t1b";
chr1\ttoy\ttranscript\t31\t55\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\texon\t53\t55\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\texon\t41\t48\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\texon\t31\t36\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\t5UTR\t53\t55\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\t5UTR\t47\t48\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\tstart_codon\t44\t46\t.\t-\t0\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\tCDS\t41\t46\t.\t-\t0\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\tstop_codon\t34\t36\t.\t-\t0\tgene_id "g2"; transcript_id "t2";
chr1\ttoy\t3UTR\t31\t33\t.\t-\t.\tgene_id "g2"; transcript_id "t2";
"""

# What a person reads off the toy annotation, 1-based inclusive. t1b's intron (9-21) covers t1's exon 13-17.
# Splice sites in transcript orientation: on g2 (-) the donor is the intron's highest 2 bases.
EXPECTED = {
    "gene": [(3, 26), (31, 55)],
    "exon": [(3, 8), (13, 17), (22, 26), (31, 36), (41, 48), (53, 55)],
    "CDS": [(6, 8), (13, 17), (22, 24), (34, 36), (41, 46)],
    "intron": [(9, 21), (37, 40), (49, 52)],
    "five_prime_UTR": [(3, 5), (47, 48), (53, 55)],
    "three_prime_UTR": [(25, 26), (31, 33)],
    "splice_donor": [(9, 10), (18, 19), (39, 40), (51, 52)],
    "splice_acceptor": [(11, 12), (20, 21), (37, 38), (49, 50)],
    "intergenic": [(1, 2), (27, 30), (56, 60)],
}
LENGTH = 60


def expected_matrix(classes: tuple[str, ...] = CORE_CLASSES, runs: dict = EXPECTED) -> np.ndarray:
    out = np.zeros((LENGTH, len(classes)), dtype=np.uint8)
    for name, spans in runs.items():
        for first, last in spans:
            out[first - 1 : last, classes.index(name)] = 1
    return out


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(gzip.compress(text.encode()) if name.endswith(".gz") else text.encode())
    return path


@pytest.fixture
def toy(tmp_path: Path) -> BaseLabels:
    return read_annotation(write(tmp_path, "toy.gff3", GFF3), {"chr1": LENGTH})


def test_gff3_labels_every_base_as_read_off_by_hand(toy):
    assert toy.classes == CORE_CLASSES
    got = toy.labels("chr1", 0, LENGTH)
    assert got.dtype == np.uint8 and got.shape == (LENGTH, len(CORE_CLASSES))
    for column, name in enumerate(CORE_CLASSES):  # one class at a time, so a failure names the class
        np.testing.assert_array_equal(got[:, column], expected_matrix()[:, column], err_msg=name)
    assert toy.class_counts()["splice_donor"] == 8 and toy.class_counts()["intergenic"] == 11


def test_gtf_without_gene_lines_and_with_separate_stop_codons_gives_the_same_labels(tmp_path, toy):
    labels = read_annotation(write(tmp_path, "toy.gtf.gz", GTF), {"chr1": LENGTH})
    assert labels.classes == CORE_CLASSES
    np.testing.assert_array_equal(labels.labels("chr1", 0, LENGTH), toy.labels("chr1", 0, LENGTH))


def test_gtf_is_recognised_by_its_attributes_whatever_the_extension(tmp_path, toy):
    labels = read_annotation(write(tmp_path, "toy.gff", GTF), {"chr1": LENGTH})
    np.testing.assert_array_equal(labels.masks["chr1"], toy.masks["chr1"])


def test_reverse_reads_the_rows_backwards_and_bases_past_the_contig_are_unknown_and_unlabelled(toy):
    forward, backward = toy.labels("chr1", -5, LENGTH + 5), toy.labels("chr1", -5, LENGTH + 5, reverse=True)
    np.testing.assert_array_equal(backward, forward[::-1])
    np.testing.assert_array_equal(forward[5:-5], toy.labels("chr1", 0, LENGTH))
    assert not forward[:5].any() and not forward[-5:].any()
    known = toy.known("chr1", -5, LENGTH + 5)
    assert known.tolist() == [False] * 5 + [True] * LENGTH + [False] * 5
    assert toy.known("chr1", LENGTH - 2, LENGTH + 3, reverse=True).tolist() == [False] * 3 + [True] * 2


def test_in_transcript_reading_order_each_intron_starts_with_its_donor_on_both_strands(toy):
    donor, acceptor = CORE_CLASSES.index("splice_donor"), CORE_CLASSES.index("splice_acceptor")
    g2 = toy.labels("chr1", 30, 55, reverse=True)  # row i is base 55 - i: introns 49-52 and 37-40 read downwards
    assert np.flatnonzero(g2[:, donor]).tolist() == [3, 4, 15, 16]
    assert np.flatnonzero(g2[:, acceptor]).tolist() == [5, 6, 17, 18]
    g1 = toy.labels("chr1", 2, 26)  # row i is base 3 + i: introns 9-12 and 18-21 (t1) read upwards
    assert np.flatnonzero(g1[:, donor]).tolist() == [6, 7, 15, 16]
    assert np.flatnonzero(g1[:, acceptor]).tolist() == [8, 9, 17, 18]


@pytest.mark.parametrize(("seqid", "contig"), [("1", "chr1"), ("chr1", "1"), ("Chr1", "1"), ("1", "Chr1")])
def test_a_chr_prefix_on_one_side_only_is_reconciled(tmp_path, seqid, contig):
    labels = read_annotation(write(tmp_path, "toy.gff3", GFF3.replace("chr1\t", f"{seqid}\t")), {contig: LENGTH})
    assert list(labels.masks) == [contig]
    np.testing.assert_array_equal(labels.labels(contig, 0, LENGTH), expected_matrix())


def test_records_on_contigs_missing_from_the_fasta_are_skipped_counted_and_reported(tmp_path, toy):
    other = "".join(f"chr2\t{line.split(chr(9), 1)[1]}\n" for line in GFF3.splitlines() if line.startswith("chr1\t"))
    text = GFF3.replace("##FASTA", other.rstrip("\n") + "\n##FASTA")
    labels = read_annotation(write(tmp_path, "two.gff3", text), {"chr1": LENGTH, "chrM": 10})
    np.testing.assert_array_equal(labels.masks["chr1"], toy.masks["chr1"])
    assert labels.skipped == {"chr2": 19}
    assert labels.labels("chrM", 0, 10)[:, CORE_CLASSES.index("intergenic")].all()  # a contig with no features
    assert "skipped 19 records on 1 contigs not in the FASTA (chr2)" in labels.summary()


def test_known_feature_types_and_extra_types_become_classes_after_the_core_ones(tmp_path, toy):
    more = "chr1\ttoy\ttRNA\t27\t29\t.\t+\t.\tID=r1\nchr1\ttoy\ttransposable_element\t56\t58\t.\t-\t.\tID=te1\n" \
           "chr1\ttoy\trepeat_region\t58\t60\t.\t+\t.\tID=rr1\n"
    text = GFF3.replace("##FASTA", more + "##FASTA")
    labels = read_annotation(write(tmp_path, "more.gff3", text), {"chr1": LENGTH}, ["repeat_region", "enhancer"])
    classes = CORE_CLASSES + ("tRNA", "transposable_element", "repeat_region", "enhancer")
    assert labels.classes == classes
    runs = {**EXPECTED, "tRNA": [(27, 29)], "transposable_element": [(56, 58)], "repeat_region": [(58, 60)]}
    np.testing.assert_array_equal(labels.labels("chr1", 0, LENGTH), expected_matrix(classes, runs))
    summary = labels.summary().splitlines()
    assert len(summary) == 1 + len(classes)
    assert "enhancer" in summary[-1] and "none in the annotation" in summary[-1]
    assert "none" not in "".join(summary[1:-1])


def lines_of(text: str) -> list[str]:
    return text.split("##FASTA")[0].splitlines()


def edited(line_index: int, edit) -> str:
    lines = lines_of(GFF3)
    lines[line_index] = edit(lines[line_index])
    return "\n".join(lines) + "\n"


def column(index: int, value: str):
    return lambda line: "\t".join(value if i == index else f for i, f in enumerate(line.split("\t")))


@pytest.mark.parametrize(
    ("text", "lengths", "line", "says"),
    [
        pytest.param(edited(5, lambda line: line.rsplit("\t", 1)[0]), {"chr1": LENGTH}, 6,
                     "columns (GFF3/GTF), got 8", id="8-columns"),
        pytest.param(edited(5, lambda line: line.replace("\t", "  ")), {"chr1": LENGTH}, 6,
                     "columns (GFF3/GTF), got 1", id="spaces-not-tabs"),
        pytest.param(edited(2, column(3, "3.5")), {"chr1": LENGTH}, 3, "must be integers, got '3.5' '26'",
                     id="non-integer-start"),
        pytest.param(edited(2, column(3, "27")), {"chr1": LENGTH}, 3, "chr1:27-26 needs 1 <= start <= end",
                     id="start-after-end"),
        pytest.param(edited(2, column(3, "0")), {"chr1": LENGTH}, 3, "chr1:0-26 needs 1 <= start <= end",
                     id="start-0"),
        pytest.param(GFF3, {"chr1": 50}, 12, "chr1:31-55 ends past contig 'chr1' (length 50 in the FASTA)",
                     id="past-the-contig-end"),
        pytest.param(GFF3, {"chrX": LENGTH, "chrY": 5}, 3, "contig 'chr1' matches no FASTA contig, and no other "
                     "record does either (the FASTA has chrX, chrY)", id="no-contig-matches"),
        pytest.param("chr1\tx\tregion\t1\t60\t.\t+\t.\tID=r\nchr1\tx\tmRNA\t2\t9\t.\t+\t.\tID=t\n",
                     {"chr1": LENGTH}, None, "no gene or exon features on the FASTA's contigs (the most common "
                     "types are region, mRNA)", id="no-genes"),
        pytest.param("##gff-version 3\n# nothing\n\n", {"chr1": LENGTH}, None, "no feature lines", id="empty"),
    ],
)
def test_bad_annotations_raise_one_line_naming_the_file_and_line(tmp_path, text, lengths, line, says):
    path = write(tmp_path, "bad.gff3", text)
    with pytest.raises(InputFileError) as caught:
        read_annotation(path, lengths)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: line {line}: " if line else f"{path}: ")
    assert says in message


def test_a_missing_or_binary_annotation_is_an_input_error(tmp_path):
    with pytest.raises(InputFileError, match="no such annotation file"):
        read_annotation(tmp_path / "absent.gff3", {"chr1": LENGTH})
    path = tmp_path / "binary.gff3"
    path.write_bytes(b"\x1f\x8b\x08not really gzip")
    with pytest.raises(InputFileError, match="not a readable GFF3/GTF text file"):
        read_annotation(path, {"chr1": LENGTH})


def test_a_byte_order_mark_is_not_part_of_the_first_line(tmp_path, toy):
    """Files saved by Windows editors start with U+FEFF: not a contig name or a feature line."""
    gff3 = tmp_path / "bom.gff3"
    gff3.write_bytes(b"\xef\xbb\xbf" + GFF3.encode())
    np.testing.assert_array_equal(read_annotation(gff3, {"chr1": LENGTH}).masks["chr1"], toy.masks["chr1"])
    bed = tmp_path / "bom.bed"
    bed.write_bytes(b"\xef\xbb\xbfchr1\t2\t26\n")
    assert read_bed_tracks({"gene": bed}, {"chr1": LENGTH}).class_counts() == {"gene": 24}


def test_bed_tracks_label_their_intervals_with_their_class_and_skip_other_chromosomes(tmp_path):
    genes = write(tmp_path, "genes.bed.gz", "chr1\t2\t26\tg1\nchr2\t0\t5\tother\nchr1\t30\t55\tg2\n")
    enhancers = write(tmp_path, "enhancers.bed", "track name=x\nchr1\t56\t60\nchr1\t57\t59\n")
    labels = read_bed_tracks({"gene": genes, "enhancer": enhancers}, {"1": LENGTH})
    assert labels.classes == ("gene", "enhancer") and labels.skipped == {"chr2": 1}
    expected = expected_matrix(("gene", "enhancer"), {"gene": EXPECTED["gene"], "enhancer": [(57, 60)]})
    np.testing.assert_array_equal(labels.labels("1", 0, LENGTH), expected)
    assert labels.class_counts() == {"gene": 49, "enhancer": 4}


def test_bed_track_errors_name_the_file_and_line(tmp_path):
    past = write(tmp_path, "past.bed", "chr1\t2\t26\nchr1\t50\t61\n")
    with pytest.raises(InputFileError, match=rf"^{past}: line 2: interval chr1:50-61 ends past contig 'chr1' \(length"):
        read_bed_tracks({"gene": past}, {"chr1": LENGTH})
    elsewhere = write(tmp_path, "elsewhere.bed", "chr5\t2\t26\nchr6\t50\t61\n")
    with pytest.raises(InputFileError, match=rf"^{elsewhere}: line 1: contig 'chr5' matches no FASTA contig"):
        read_bed_tracks({"gene": elsewhere}, {"chr1": LENGTH})


# real annotations ---------------------------------------------------------------------------------------


def read_fasta(path: Path) -> tuple[str, bytes]:
    """Name and uppercase sequence of a one-record gzip FASTA."""
    with gzip.open(path, "rb") as handle:
        header, *lines = handle.read().split(b"\n")
    return header[1:].split()[0].decode(), b"".join(lines).upper()


def splice_dinucleotides(labels: BaseLabels, name: str, sequence: bytes, cls: str) -> Counter:
    """Forward-strand bases under each 2-base run of a splice-site class (longer runs: sites that touch, left out)."""
    on = ((labels.masks[name] >> labels.classes.index(cls)) & 1).astype(np.int8)
    edges = np.diff(np.concatenate([[0], on, [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return Counter(sequence[s : s + 2].decode() for s in starts[ends - starts == 2])


def assert_splice_sites_read_gt_ag_on_both_strands(labels: BaseLabels, name: str, sequence: bytes) -> None:
    donors = splice_dinucleotides(labels, name, sequence, "splice_donor")
    acceptors = splice_dinucleotides(labels, name, sequence, "splice_acceptor")
    total_d, total_a = sum(donors.values()), sum(acceptors.values())
    assert (donors["GT"] + donors["AC"]) / total_d > 0.95, donors.most_common(5)  # AC: GT of a minus-strand intron
    assert (acceptors["AG"] + acceptors["CT"]) / total_a > 0.95, acceptors.most_common(5)
    assert min(donors["GT"], donors["AC"], acceptors["AG"], acceptors["CT"]) > 0.3 * total_d  # both strands


def bases_with(labels: BaseLabels, name: str, *classes: str, without: str | None = None) -> int:
    bits = np.uint32(sum(1 << labels.classes.index(c) for c in classes))
    mask = labels.masks[name]
    hit = (mask & bits) == bits
    return int(np.count_nonzero(hit & ((mask >> labels.classes.index(without)) & 1 == 0) if without else hit))


@pytest.mark.slow
@needs(TAIR10_GFF, TAIR10_FASTA)
def test_tair10_chr1_splice_sites_read_gt_ag_and_class_shares_are_plausible():
    name, sequence = read_fasta(TAIR10_FASTA)
    labels = read_annotation(TAIR10_GFF, {name: len(sequence)})
    assert_splice_sites_read_gt_ag_on_both_strands(labels, name, sequence)
    counts = labels.class_counts()
    assert counts["gene"] + counts["intergenic"] == len(sequence)
    share = {c: n / len(sequence) for c, n in counts.items()}
    assert 0.5 < share["gene"] < 0.8 and 0.3 < share["exon"] < 0.6 and 0.2 < share["CDS"] < 0.4
    assert 0.1 < share["intron"] < 0.3
    assert 0.02 < share["five_prime_UTR"] < 0.1 and 0.02 < share["three_prime_UTR"] < 0.1
    assert {"pseudogene", "tRNA", "lnc_RNA", "miRNA"} <= set(labels.classes) and not labels.skipped
    for inner, outer in [("CDS", "exon"), ("five_prime_UTR", "exon"), ("splice_donor", "intron"), ("exon", "gene")]:
        assert bases_with(labels, name, inner, without=outer) == 0, (inner, outer)


@needs(DM6_GFF, DM6_FASTA)
def test_dm6_chr4_reads_with_its_transposons_and_gt_ag_splice_sites():
    name, sequence = read_fasta(DM6_FASTA)
    labels = read_annotation(DM6_GFF, {name: len(sequence)})
    assert name == "NC_004353.4" and not labels.skipped
    assert "mobile_genetic_element" in labels.classes
    assert_splice_sites_read_gt_ag_on_both_strands(labels, name, sequence)
    share = {c: n / len(sequence) for c, n in labels.class_counts().items()}
    assert 0.6 < share["gene"] < 0.95 and 0.2 < share["exon"] < 0.5 and share["mobile_genetic_element"] > 0.1


@pytest.mark.slow
@needs(HG19_GENES, HG19_EXONS, CHR20_FASTA)
def test_hg19_bed_tracks_label_chr20_of_a_fasta_that_calls_it_20():
    name, sequence = read_fasta(CHR20_FASTA)
    assert name == "20"
    labels = read_bed_tracks({"gene": HG19_GENES, "exon": HG19_EXONS}, {name: len(sequence)})
    assert labels.classes == ("gene", "exon") and "chr1" in labels.skipped and "chr20" not in labels.skipped
    share = {c: n / len(sequence) for c, n in labels.class_counts().items()}
    assert 0.3 < share["gene"] < 0.6 and 0.01 < share["exon"] < 0.06
    assert bases_with(labels, name, "exon", without="gene") < 0.01 * share["exon"] * len(sequence)
    assert "skipped" in labels.summary().splitlines()[-1]
