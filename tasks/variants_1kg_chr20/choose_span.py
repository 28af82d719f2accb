"""Choose the LLR's span (bases scored after the allele), and whether to average both strands, on validation
variants, never on the test ones.

The validation variants are a seeded sample of the labelled 1000 Genomes chr20 records that are not in the test
subset (`make_labels.py`); each span is scored with `genomenet score-variants` and judged by the zero-shot LLR's
AUROC (rare vs common). Prints one row per (span, strands) and the chosen one.

    python tasks/variants_1kg_chr20/choose_span.py --spans 0 8 32 256
    python tasks/variants_1kg_chr20/choose_span.py --spans 256 --strands one both   # --reverse-complement or not
"""

from __future__ import annotations

import argparse
import csv
import random
import sys
from pathlib import Path

import pysam
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_labels import VCF, labelled_records  # noqa: E402

from genomenet.downstream.score_variants import score_variants  # noqa: E402
from genomenet.downstream.variant_effects import ScoreOptions  # noqa: E402
from genomenet.downstream.variant_eval import EFFECT_SIGN  # noqa: E402

GENOME = Path(__file__).resolve().parents[3] / "shared" / "data" / "genomes" / "grch37_chr20.fa.gz"


def validation_set(out_dir: Path, test_labels: Path, per_class: int, seed: int) -> tuple[Path, Path]:
    """A VCF and labels TSV of `per_class` rare and common records outside the test subset."""
    test = {(r["chrom"], r["pos"], r["ref"], r["alt"]) for r in csv.DictReader(open(test_labels), delimiter="\t")}
    vcf = pysam.VariantFile(str(VCF))
    records = [(r, y) for r, y in labelled_records(vcf) if (r.chrom, str(r.pos), r.ref, r.alts[0]) not in test]
    rng = random.Random(seed)
    keep = sorted(i for label in (0, 1) for i in rng.sample([i for i, (_, y) in enumerate(records) if y == label],
                                                            per_class))
    out_dir.mkdir(parents=True, exist_ok=True)
    path, labels = out_dir / "validation.vcf", out_dir / "validation_labels.tsv"
    with pysam.VariantFile(str(path), "w", header=vcf.header) as out:
        for i in keep:
            out.write(records[i][0])
    with open(labels, "w") as handle:
        handle.write("chrom\tpos\tref\talt\tlabel\n")
        for i in keep:
            r, y = records[i]
            handle.write(f"{r.chrom}\t{r.pos}\t{r.ref}\t{r.alts[0]}\t{y}\n")
    return path, labels


def llr_auroc(tsv: Path, labels: Path) -> tuple[float, int]:
    """AUROC of -LLR (higher = more disruptive) for rare (1) vs common (0), and how many variants it covers."""
    truth = {(r["chrom"], r["pos"], r["ref"], r["alt"]): int(r["label"])
             for r in csv.DictReader(open(labels), delimiter="\t")}
    y, effect = [], []
    for row in csv.DictReader(open(tsv), delimiter="\t"):
        key = (row["chrom"], row["pos"], row["ref"], row["alt"])
        if row["flag"] == "." and key in truth:
            y.append(truth[key])
            effect.append(EFFECT_SIGN["llr"] * float(row["GN_LLR"]))
    return float(roc_auc_score(y, effect)), len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="runs/tasks/chr20_variants/backbone")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/tasks/variants_1kg_chr20/validation"))
    parser.add_argument("--test-labels", type=Path, default=Path("runs/tasks/variants_1kg_chr20/labels.tsv"))
    parser.add_argument("--spans", type=int, nargs="+", default=[0, 8, 32, 256])
    parser.add_argument("--per-class", type=int, default=1000)
    parser.add_argument("--window", type=int, default=1024)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--strands", nargs="+", choices=["one", "both"], default=["one"],
                        help="both: score-variants --reverse-complement (each score averaged over the two strands)")
    args = parser.parse_args()
    vcf, labels = validation_set(args.out_dir, args.test_labels, args.per_class, args.seed)
    print(f"validation: {2 * args.per_class} variants outside the test subset ({vcf})")
    print("| span (bases after the allele) | strands | scored | LLR AUROC | seconds |")
    print("|---:|---|---:|---:|---:|")
    results, markov = {}, ""
    for span in args.spans:
        for strands in args.strands:
            name = f"span_{span}" + ("_both" if strands == "both" else "")
            options = ScoreOptions(args.window, ("llr",), reverse_complement=strands == "both", span=span)
            _, _, seconds, table = score_variants(
                args.model, str(GENOME), str(vcf), str(args.out_dir / f"{name}.vcf"), options,
                tsv=str(args.out_dir / f"{name}.tsv"), progress=False,
                labels_tsv=None if results else str(labels))   # the Markov LLR's row, once
            if table is not None:
                markov = next(line for line in table.splitlines() if "Markov" in line)
            results[span, strands], scored = llr_auroc(args.out_dir / f"{name}.tsv", labels)
            print(f"| {span} | {strands} | {scored} | {results[span, strands]:.3f} | {seconds:.0f} |", flush=True)
    span, strands = max(results, key=results.get)
    print(f"the Markov baseline on the same variants: {markov}")
    print(f"chosen: span {span}, {strands} strand(s) (validation LLR AUROC {results[span, strands]:.3f})")


if __name__ == "__main__":
    main()
