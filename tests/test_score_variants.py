"""`genomenet score-variants`: scores equal a by-hand computation from the model's logits, every record comes back
in order with its INFO fields, and bad input is one line with nothing written."""

from __future__ import annotations

import gzip
import random
from pathlib import Path

import numpy as np
import pysam
import pytest
import torch
from conftest import DMEL
from inference_models import tiny_model

from genomenet.cli import main
from genomenet.data.tokenizers import make_tokenizer
from genomenet.model.pretrained import load_pretrained

CHROM = "NC_004353.4:1100001-1300000"
WINDOW = 96


@pytest.fixture(scope="module")
def genome_text() -> str:
    with gzip.open(DMEL, "rt") as handle:
        handle.readline()
        return "".join(line.strip() for line in handle).upper()


def write_vcf(path: Path, rows: list[tuple[str, int, str, str]], contig: str = CHROM) -> Path:
    """rows: (chrom, 1-based pos, REF, ALT[,ALT])."""
    header = ["##fileformat=VCFv4.2", f"##contig=<ID={contig},length=200000>",
              '##INFO=<ID=AF,Number=A,Type=Float,Description="allele frequency">',
              "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    body = [f"{c}\t{p}\tv{i}\t{r}\t{a}\t.\tPASS\tAF={','.join(['0.1'] * len(a.split(',')))}"
            for i, (c, p, r, a) in enumerate(rows)]
    path.write_text("\n".join(header + body) + "\n")
    return path


def log_likelihood(model, tokenizer, text: str) -> tuple[float, torch.Tensor]:
    """ln P(sequence) under a causal model (every token after the first, N tokens not scored) and the hidden states,
    in float64."""
    ids = torch.as_tensor(tokenizer.encode(text), dtype=torch.long)[None]
    with torch.no_grad():
        hidden = model.double().hidden_states(ids)
        logp = torch.log_softmax(model.lm_head(hidden), -1)[0, :-1].gather(-1, ids[0, 1:, None])[:, 0]
    return float((logp * (ids[0, 1:] < tokenizer.n_id)).sum()), hidden[0]


def complement(text: str) -> str:
    return text[::-1].translate(str.maketrans("ACGTN", "TGCAN"))


def by_hand(model, k: int, text: str, start0: int, ref: str, alt: str, strand: str,
            span: int | None = None) -> tuple[float, float]:
    """(LLR, 1 - cosine) of one allele read as docs/variants.md says: the window/2-spaced tile (whole k-mers) that
    holds the variant at least window/4 from its ends, its bases before the allele, the allele, then `span` (default
    window/4) bases after it; the embedding distance compares the mean hidden state of the rows from the variant's
    first token on."""
    window = WINDOW // k * k
    quarter, stride = window // 4 // k * k, window // 2 // k * k
    span = quarter if span is None else span
    t0 = (start0 - quarter) // stride * stride
    end = start0 + len(ref)
    if strand == "+":
        before, after = text[t0:start0], text[end:end + span]
    else:
        before, after = complement(text[end:t0 + window]), complement(text[start0 - span:start0])
        ref, alt = complement(ref), complement(alt)
    tokenizer = make_tokenizer(k)
    first = len(before) // k
    (ll_alt, h_alt), (ll_ref, h_ref) = (log_likelihood(model, tokenizer, before + a + after) for a in (alt, ref))
    cosine = 1 - torch.nn.functional.cosine_similarity(h_alt[first:].mean(0), h_ref[first:].mean(0), dim=0)
    return ll_alt - ll_ref, float(cosine)


@pytest.mark.parametrize(("k", "attention", "reverse_complement", "span"),
                         [(1, "dilated", False, None), (2, "dilated", False, None), (1, "dilated", True, 40),
                          (2, "dense", True, None), (1, "local", False, 5), (1, "dilated", False, 0),
                          (1, "strided", True, None)])
def test_scores_equal_a_by_hand_computation_from_the_model(tmp_path: Path, genome_text: str, k: int,
                                                           attention: str, reverse_complement: bool,
                                                           span: int | None, capsys) -> None:
    """Both strands, k-mers, SNVs, insertions and deletions, spans inside and past the tile; dilated and dense
    attention continue a cached reference pass, local and strided attention run each reading whole: all equal the
    float64 likelihoods of the two readings."""
    rng = random.Random(k)
    model_dir = tiny_model(tmp_path / "model", k=k, seed=rng.randrange(1000), attention=attention)
    rows = []
    for start0 in sorted(rng.sample(range(1000, 90_000), 6) + [50_010, 50_013]):  # two share a tile
        ref = genome_text[start0]
        kind = len(rows) % 3
        alt = rng.choice([b for b in "ACGT" if b != ref]) if kind == 0 else (
            ref + "".join(rng.choices("ACGT", k=rng.randint(1, 5))) if kind == 1 else ref)
        if kind == 2:  # a deletion: REF spans several bases, ALT keeps the first
            ref = genome_text[start0:start0 + rng.randint(2, 6)]
        rows.append((CHROM, start0 + 1, ref, alt))
    vcf = write_vcf(tmp_path / "in.vcf", rows)
    out = tmp_path / "out.vcf.gz"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--scores", "llr,cosine,l2", "--cache-dir",
                 str(tmp_path / "cache"), "--quiet", "--device", "cpu", "--batch-size", "2"]
                + ["--reverse-complement"] * reverse_complement + (["--span", str(span)] if span is not None else [])
                ) == 0
    model = load_pretrained(model_dir)
    records = list(pysam.VariantFile(str(out)))
    assert [(r.pos, r.ref, r.alts[0]) for r in records] == [(p, r, a) for _, p, r, a in rows]
    for record, (_, pos, ref, alt) in zip(records, rows, strict=True):
        strands = ("+", "-") if reverse_complement else ("+",)
        expected = np.mean([by_hand(model, k, genome_text, pos - 1, ref, alt, s, span) for s in strands], axis=0)
        assert record.info["GN_LLR"][0] == pytest.approx(expected[0], abs=2e-3)
        assert record.info["GN_COS"][0] == pytest.approx(expected[1], abs=1e-4)
        assert record.info["GN_L2"][0] >= 0
    assert Path(f"{out}.tbi").is_file()
    assert f"scored {len(rows)} records" in capsys.readouterr().out


def test_a_score_does_not_depend_on_the_other_records_in_the_file(tmp_path: Path, genome_text: str) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=11)
    starts = [40_000 + 7 * i for i in range(12)]          # twelve SNVs in one or two tiles
    rows = [(CHROM, s + 1, genome_text[s], "A" if genome_text[s] != "A" else "G") for s in starts]

    def scores(chosen: list) -> dict:
        vcf, out = write_vcf(tmp_path / "in.vcf", chosen), tmp_path / "out.vcf"
        assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                     str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                     "--device", "cpu"]) == 0
        return {r.pos: (r.info["GN_LLR"][0], r.info["GN_COS"][0]) for r in pysam.VariantFile(str(out))}

    together = scores(rows)
    for row in rows[::5]:
        alone = scores([row])
        assert alone[row[1]] == pytest.approx(together[row[1]], abs=1e-5)


def test_unscorable_alleles_are_kept_and_flagged_per_alt(tmp_path: Path, genome_text: str) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=1)
    base = genome_text[5000]
    other = next(b for b in "ACGT" if b != base)
    rows = [(CHROM, 5001, base, f"{other},<DEL>"), (CHROM, 5001, base, "*"), (CHROM, 3, genome_text[2], other),
            (CHROM, 7001, other if genome_text[7000] != other else base, "T")]
    vcf = write_vcf(tmp_path / "in.vcf", rows)
    out, tsv = tmp_path / "out.vcf", tmp_path / "out.tsv"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--tsv", str(tsv), "--window", str(WINDOW), "--keep-mismatches", "--cache-dir",
                 str(tmp_path / "cache"), "--quiet", "--device", "cpu"]) == 0
    records = list(pysam.VariantFile(str(out)))
    assert len(records) == 4
    assert records[0].info["GN_FLAG"] == (".", "SYMBOLIC") and records[0].info["GN_LLR"][0] is not None
    assert records[1].info["GN_FLAG"] == ("STAR",)
    assert records[2].info["GN_FLAG"] == ("EDGE",)
    assert records[3].info["GN_FLAG"] == ("REF_MISMATCH",) and "GN_LLR" not in records[3].info
    assert len(tsv.read_text().splitlines()) == 1 + 5


def one_line(capfd, argv: list[str]) -> str:
    code = main(argv)
    err = capfd.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("case", ["ref_mismatch", "not_vcf", "truncated", "no_alt", "contig", "model"])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path, genome_text: str, capfd, case: str) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=2) if case != "model" else tmp_path
    good = genome_text[20_000]
    wrong = next(b for b in "ACGT" if b != good)
    rows = [(CHROM, 10_001, genome_text[10_000], "A" if genome_text[10_000] != "A" else "C")]
    vcf = write_vcf(tmp_path / "in.vcf", rows + [(CHROM, 20_001, wrong, good)] if case == "ref_mismatch" else rows)
    if case == "not_vcf":
        vcf.write_text("this is not a VCF\n")
    elif case == "truncated":
        big = write_vcf(tmp_path / "big.vcf", rows * 3000)
        pysam.tabix_compress(str(big), str(tmp_path / "big.vcf.gz"))
        data = (tmp_path / "big.vcf.gz").read_bytes()
        vcf = tmp_path / "cut.vcf.gz"
        vcf.write_bytes(data[: len(data) // 2])
    elif case == "no_alt":
        vcf.write_text(vcf.read_text().replace("\tA\t.\tPASS", "\t.\t.\tPASS").replace("\tC\t.\tPASS", "\t.\t.\tPASS"))
    elif case == "contig":
        vcf = write_vcf(tmp_path / "in.vcf", [("2L", 10, "A", "C")], contig="2L")
    out = tmp_path / "out.vcf.gz"
    line = one_line(capfd, ["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf),
                            "--out", str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"),
                            "--quiet", "--device", "cpu"])
    named = {"ref_mismatch": "record 2", "not_vcf": str(vcf), "truncated": str(vcf), "no_alt": "no ALT",
             "contig": "contig '2L'", "model": str(model_dir)}[case]
    assert named in line
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_a_chr_prefix_on_one_side_only_is_reconciled(tmp_path: Path, genome_text: str, capfd) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=3)
    fasta = tmp_path / "genome.fa"
    fasta.write_text(">4\n" + genome_text[:50_000] + "\n")
    base = genome_text[20_000]
    vcf = write_vcf(tmp_path / "in.vcf", [("chr4", 20_001, base, "A" if base != "A" else "G")], contig="chr4")
    out = tmp_path / "out.vcf"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(fasta), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--device", "cpu"]) == 0
    assert "read as the FASTA's '4'" in capfd.readouterr().err
    record = next(iter(pysam.VariantFile(str(out))))
    assert record.chrom == "chr4" and record.info["GN_LLR"][0] is not None


def test_labels_give_auroc_of_every_score_beside_the_markov_llr(tmp_path: Path, genome_text: str, capsys) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=4)
    rows, labels = [], ["chrom\tpos\tref\talt\tlabel"]
    starts = [s for s in range(30_000, 40_000, 50) if genome_text[s] in "ACGT"][:20]
    for i, start0 in enumerate(starts):
        ref = genome_text[start0]
        alt = "A" if ref != "A" else "C"
        rows.append((CHROM, start0 + 1, ref, alt))
        labels.append(f"{CHROM}\t{start0 + 1}\t{ref}\t{alt}\t{i % 2}")
    vcf = write_vcf(tmp_path / "in.vcf", rows)
    (tmp_path / "labels.tsv").write_text("\n".join(labels) + "\n")
    out = tmp_path / "out.vcf"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--labels", str(tmp_path / "labels.tsv"), "--markov-max-order",
                 "3", "--cache-dir", str(tmp_path / "cache"), "--quiet", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "labelled ALTs: 20 (10 positive)" in printed
    assert "| llr | 20 |" in printed and "| Markov LLR (baseline) | 20 |" in printed
    assert all(r.info["GN_MARKOV_LLR"][0] is not None for r in pysam.VariantFile(str(out)))


def test_a_vcf_without_contig_lines_is_written_with_them(tmp_path: Path, genome_text: str) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=5)
    base = genome_text[30_000]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 30_001, base, "A" if base != "A" else "C")])
    vcf.write_text("".join(line + "\n" for line in vcf.read_text().splitlines() if not line.startswith("##contig")))
    out = tmp_path / "out.vcf.gz"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--device", "cpu"]) == 0
    scored = pysam.VariantFile(str(out))
    assert CHROM in scored.header.contigs and scored.header.contigs[CHROM].length == 200_000
    assert next(iter(scored)).info["GN_LLR"][0] is not None


def test_mutagenesis_scores_every_alternative_as_score_variants_does(tmp_path: Path, genome_text: str) -> None:
    """Three rows per position, each equal to the same SNV scored from a VCF; the bedGraph holds the largest -LLR."""
    model_dir = tiny_model(tmp_path / "model", seed=12)
    start0, end = 60_000, 60_030                                    # 1-based region 60001-60030
    prefix = tmp_path / "ism"
    assert main(["mutagenize", "--model", str(model_dir), "--fasta", str(DMEL), "--region",
                 f"{CHROM}:{start0 + 1}-{end}", "--out", str(prefix), "--window", str(WINDOW), "--cache-dir",
                 str(tmp_path / "cache"), "--quiet", "--device", "cpu"]) == 0
    rows = [line.split("\t") for line in prefix.with_suffix(".tsv").read_text().splitlines()[1:]]
    assert len(rows) == 3 * (end - start0)
    assert prefix.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    chosen = rows[::17]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, int(pos), ref, alt) for _, pos, ref, alt, _, _ in chosen])
    out = tmp_path / "out.vcf"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--scores", "llr", "--cache-dir", str(tmp_path / "cache"),
                 "--quiet", "--device", "cpu"]) == 0
    for record, row in zip(pysam.VariantFile(str(out)), chosen, strict=True):
        assert record.info["GN_LLR"][0] == pytest.approx(float(row[4]), abs=1e-4)
    by_position: dict[int, list[float]] = {}
    for _, pos, _, _, llr, _ in rows:
        by_position.setdefault(int(pos), []).append(-float(llr))
    track = [line.split("\t") for line in prefix.with_suffix(".bedGraph").read_text().splitlines()[1:]]
    assert len(track) == end - start0
    for _, begin, _, value in track:
        assert float(value) == pytest.approx(max(by_position[int(begin) + 1]), rel=1e-4, abs=1e-5)


def test_a_plain_gzip_vcf_is_one_line_that_says_bgzip(tmp_path: Path, genome_text: str, capfd) -> None:
    """gzip (not bgzip) is what `gzip file.vcf` makes: htslib opens it but pysam cannot seek in it."""
    model_dir = tiny_model(tmp_path / "model", seed=2)
    base = genome_text[10_000]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 10_001, base, "A" if base != "A" else "C")])
    gz = tmp_path / "in.vcf.gz"
    gz.write_bytes(gzip.compress(vcf.read_bytes()))
    out = tmp_path / "out.vcf"
    line = one_line(capfd, ["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(gz),
                            "--out", str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"),
                            "--quiet", "--device", "cpu"])
    assert str(gz) in line and "bgzip" in line
    assert not out.exists() and not list(tmp_path.glob(".out*"))


@pytest.mark.parametrize("case", ["out_missing_folder", "out_is_folder", "tsv_missing_folder", "out_bcf"])
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path: Path, genome_text: str, capfd,
                                                                     case: str) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=2)
    base = genome_text[10_000]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 10_001, base, "A" if base != "A" else "C")])
    out, tsv = tmp_path / "out.vcf.gz", tmp_path / "out.tsv"
    if case == "out_missing_folder":
        out = tmp_path / "missing" / "out.vcf.gz"
    elif case == "out_is_folder":
        out.mkdir()
    elif case == "out_bcf":   # would be written as text under a BCF name
        out = tmp_path / "out.bcf"
    else:
        tsv = tmp_path / "missing" / "out.tsv"
    line = one_line(capfd, ["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf),
                            "--out", str(out), "--tsv", str(tsv), "--window", str(WINDOW), "--cache-dir",
                            str(tmp_path / "cache"), "--quiet", "--device", "cpu"])
    assert (str(tsv) if case.startswith("tsv") else str(out)) in line
    assert not list(tmp_path.glob(".out*")) and not (tmp_path / "cache").exists()     # nothing run, nothing left


def test_a_symbolic_allele_leaves_no_undeclared_info_field(tmp_path: Path, genome_text: str) -> None:
    """pysam adds END to a record with a symbolic ALT when writing it: the output header declares it."""
    model_dir = tiny_model(tmp_path / "model", seed=1)
    base = genome_text[5000]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 5001, base, "<DEL>")])
    out = tmp_path / "out.vcf"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--device", "cpu"]) == 0
    text = out.read_text()
    used = {field.split("=")[0] for line in text.splitlines() if not line.startswith("#")
            for field in line.split("\t")[7].split(";")}
    declared = {line.split("ID=")[1].split(",")[0] for line in text.splitlines() if line.startswith("##INFO=")}
    assert "GN_FLAG" in used and used <= declared


def test_a_record_past_the_contigs_end_says_so(tmp_path: Path, genome_text: str, capfd) -> None:
    """Not 'REF does not match': the FASTA has no base there (a VCF called on another assembly, or a cut FASTA)."""
    model_dir = tiny_model(tmp_path / "model", seed=2)
    fasta = tmp_path / "genome.fa"
    fasta.write_text(f">{CHROM}\n" + genome_text[:50_000] + "\n")
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 49_999, "ACG", "A"), (CHROM, 60_001, "A", "C")])
    vcf.write_text(vcf.read_text().replace("\t49999\tv0\tACG\t", f"\t49999\tv0\t{genome_text[49_998:50_000]}G\t"))
    line = one_line(capfd, ["score-variants", "--model", str(model_dir), "--fasta", str(fasta), "--vcf", str(vcf),
                            "--out", str(tmp_path / "out.vcf"), "--window", str(WINDOW), "--cache-dir",
                            str(tmp_path / "cache"), "--quiet", "--device", "cpu"])
    assert "record 1" in line and "past the end" in line and "50,000 bp" in line


def test_every_flag_written_is_listed_in_the_headers_description(tmp_path: Path, genome_text: str) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=1)
    base = genome_text[5000]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 5001, base, "R,<DEL>,*")])   # R: an IUPAC code, no one sequence
    out = tmp_path / "out.vcf"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--cache-dir", str(tmp_path / "cache"), "--quiet",
                 "--device", "cpu"]) == 0
    scored = pysam.VariantFile(str(out))
    flags = next(iter(scored)).info["GN_FLAG"]
    assert flags == ("NON_ACGT", "SYMBOLIC", "STAR")
    assert all(flag in scored.header.info["GN_FLAG"].description for flag in flags)


@pytest.mark.parametrize("order", ["position", "contig"])
def test_an_unsorted_vcf_for_a_gz_output_is_one_line_naming_the_record_before_scoring(
        tmp_path: Path, genome_text: str, capfd, monkeypatch, order: str) -> None:
    """A .vcf.gz output is tabix-indexed: an unsorted input is refused before any variant is scored (not after
    all of them), naming the first record out of order; a .vcf output keeps the input's order."""
    from genomenet.downstream import variant_effects

    model_dir = tiny_model(tmp_path / "model", seed=2)
    fasta = tmp_path / "genome.fa"
    fasta.write_text(f">a\n{genome_text[:30_000]}\n>b\n{genome_text[30_000:60_000]}\n")
    snv = lambda chrom, pos: (chrom, pos, (genome_text if chrom == "a" else genome_text[30_000:])[pos - 1], "N")
    rows = [snv("a", 20_001), snv("a", 10_001)] if order == "position" else [snv("a", 10_001), snv("b", 10_001),
                                                                              snv("a", 20_001)]
    vcf = write_vcf(tmp_path / "in.vcf", rows, contig="a")
    scored = []
    monkeypatch.setattr(variant_effects.VariantScorer, "score",
                        lambda self, v, f: scored.append(v) or [({}, [None] * len(x.alts)) for x in v])
    line = one_line(capfd, ["score-variants", "--model", str(model_dir), "--fasta", str(fasta), "--vcf", str(vcf),
                            "--out", str(tmp_path / "out.vcf.gz"), "--window", str(WINDOW), "--cache-dir",
                            str(tmp_path / "cache"), "--quiet", "--device", "cpu"])
    first = "record 2 (a:10001)" if order == "position" else "record 3 (a:20001)"
    assert first in line and "sort" in line and not scored
    assert not list(tmp_path.glob("*out*"))


def test_a_window_shorter_than_one_kmer_is_one_line(tmp_path: Path, genome_text: str, capfd) -> None:
    model_dir = tiny_model(tmp_path / "model", k=3, seed=2)
    base = genome_text[10_000]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, 10_001, base, "A" if base != "A" else "C")])
    line = one_line(capfd, ["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf),
                            "--out", str(tmp_path / "out.vcf"), "--window", "2", "--cache-dir",
                            str(tmp_path / "cache"), "--quiet", "--device", "cpu"])
    assert "--window 2" in line and "3-mer" in line
    assert not (tmp_path / "out.vcf").exists()


def test_a_long_span_keeps_the_llr_exact(tmp_path: Path, genome_text: str) -> None:
    """An LLR over a span of thousands of tokens is the difference of two large sums: summed in float64 it stays
    within 1e-4 of the by-hand value (float32 sums were off by 3.5e-3 here)."""
    model_dir = tiny_model(tmp_path / "model", seed=7)
    start0, span = 30_000, 30_000
    ref = genome_text[start0]
    vcf = write_vcf(tmp_path / "in.vcf", [(CHROM, start0 + 1, ref, "A" if ref != "A" else "C")])
    out = tmp_path / "out.vcf"
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(DMEL), "--vcf", str(vcf), "--out",
                 str(out), "--window", str(WINDOW), "--span", str(span), "--scores", "llr", "--cache-dir",
                 str(tmp_path / "cache"), "--quiet", "--device", "cpu", "--precision", "32"]) == 0
    expected, _ = by_hand(load_pretrained(model_dir), 1, genome_text, start0, ref, "A" if ref != "A" else "C", "+",
                          span)
    assert next(iter(pysam.VariantFile(str(out)))).info["GN_LLR"][0] == pytest.approx(expected, abs=1e-4)


def test_a_mutagenesis_prefix_with_a_dot_keeps_it(tmp_path: Path) -> None:
    from genomenet.downstream.mutagenesis import output_paths

    assert [p.name for p in output_paths(tmp_path / "ism_chr20_1.2Mb")] == \
        ["ism_chr20_1.2Mb.tsv", "ism_chr20_1.2Mb.png", "ism_chr20_1.2Mb.bedGraph"]
    assert [p.name for p in output_paths(tmp_path / "ism.tsv")] == ["ism.tsv", "ism.png", "ism.bedGraph"]


def test_a_mutagenesis_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path: Path, capfd) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=2)
    out = tmp_path / "missing" / "ism"
    line = one_line(capfd, ["mutagenize", "--model", str(model_dir), "--fasta", str(DMEL), "--region",
                            f"{CHROM}:60001-60010", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                            "--quiet", "--device", "cpu"])
    assert f"--out {out}.tsv: folder {out.parent} does not exist" in line
    assert not (tmp_path / "cache").exists()     # nothing run


def test_a_mutagenesis_region_inside_an_n_run_is_one_line_and_writes_nothing(tmp_path: Path, capfd) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=2)
    out = tmp_path / "ism"   # the slice's N run is [100662, 117662)
    line = one_line(capfd, ["mutagenize", "--model", str(model_dir), "--fasta", str(DMEL), "--region",
                            f"{CHROM}:110001-110040", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                            "--quiet", "--device", "cpu"])
    assert "no A, C, G or T" in line and "110001-110040" in line
    assert not list(tmp_path.glob("ism*"))


def test_labels_may_name_the_contig_as_the_fasta_does_and_rows_matching_nothing_are_said(
        tmp_path: Path, genome_text: str, capsys) -> None:
    model_dir = tiny_model(tmp_path / "model", seed=4)
    fasta = tmp_path / "genome.fa"
    fasta.write_text(">4\n" + genome_text[:50_000] + "\n")
    rows, labels = [], ["chrom\tpos\tref\talt\tlabel"]
    starts = [s for s in range(30_000, 40_000, 50) if genome_text[s] in "ACGT"][:10]
    for i, start0 in enumerate(starts):
        ref = genome_text[start0]
        alt = "A" if ref != "A" else "C"
        rows.append(("chr4", start0 + 1, ref, alt))
        labels.append(f"4\t{start0 + 1}\t{ref}\t{alt}\t{i % 2}")   # the VCF says chr4, the FASTA and labels 4
    vcf = write_vcf(tmp_path / "in.vcf", rows, contig="chr4")
    labels.append("4\t45001\tA\tG\t1")   # no such record in the VCF: said, not used
    (tmp_path / "labels.tsv").write_text("\n".join(labels) + "\n")
    assert main(["score-variants", "--model", str(model_dir), "--fasta", str(fasta), "--vcf", str(vcf), "--out",
                 str(tmp_path / "out.vcf"), "--window", str(WINDOW), "--labels", str(tmp_path / "labels.tsv"),
                 "--markov-max-order", "3", "--cache-dir", str(tmp_path / "cache"), "--quiet", "--device",
                 "cpu"]) == 0
    printed = capsys.readouterr()
    assert "labelled ALTs: 10 (5 positive)" in printed.out
    assert "1 of 11 rows of" in printed.err and "(first: 4:45001 A>G)" in printed.err
