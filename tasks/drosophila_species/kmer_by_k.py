"""The k-mer spectrum baseline at every k, on validation and test, for each window length: how much the report's
validation choice of k costs or gains (at 32K it picks k = 2 on 198 windows). Same windows, split and logistic
regression as the report.
    python tasks/drosophila_species/kmer_by_k.py [--lengths 1024 8192 32768]
"""
import argparse

from genomenet.baselines.kmer import kmer_spectrum, logistic_regression, sklearn_targets
from genomenet.data.region_datamodule import RegionDataModule
from genomenet.data.splits import SplitConfig
from genomenet.downstream.regions import window_codes

TASK = "runs/tasks/drosophila_species"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[1024, 8192, 32768])
    parser.add_argument("--ks", type=int, nargs="+", default=[1, 2, 3, 4, 5, 6])
    args = parser.parse_args()
    print("| window | k | val accuracy | test accuracy |\n|---:|---:|---:|---:|")
    for length in args.lengths:
        data = RegionDataModule(f"{TASK}/genome.fa", f"{TASK}/regions.bed", context_length=length,
                                split=SplitConfig(by="bed", blocks=f"{TASK}/split_blocks.bed"), split_context=32768)
        data.setup()
        kind = data.labels.kind
        codes = {s: window_codes(data, s) for s in ("train", "val", "test")}
        y = {s: sklearn_targets(kind, data.splits[s].targets) for s in codes}
        for k in args.ks:
            x = {s: kmer_spectrum(codes[s], k) for s in codes}
            model = logistic_regression(kind, 1.0).fit(x["train"], y["train"])
            print(f"| {length:,} | {k} | {model.score(x['val'], y['val']):.3f} | "
                  f"{model.score(x['test'], y['test']):.3f} |", flush=True)


if __name__ == "__main__":
    main()
