"""The region report's k-mer spectrum baseline alone (k and C chosen on validation, scored on test), for a task's
finetune.yaml: what re-checks a task's baseline row when the report's baselines change, without fine-tuning.
    python tasks/kmer_baseline.py tasks/promoters_chr20/finetune.yaml [--context-length 8192 --split-context 32768]
"""
import argparse

import yaml

from genomenet.data.region_datamodule import RegionDataModule
from genomenet.data.splits import SplitConfig
from genomenet.downstream.regions import kmer_baseline
from genomenet.evaluation.classification import classification_metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", help="a task's finetune.yaml (its data and report sections are read)")
    parser.add_argument("--context-length", type=int, help="override data.context_length")
    parser.add_argument("--split-context", type=int, help="override data.split_context")
    args = parser.parse_args()
    with open(args.config) as handle:
        config = yaml.safe_load(handle)
    data_args = dict(config["data"]["init_args"])
    data_args["split"] = SplitConfig(**data_args.get("split", {}))
    for key in ("context_length", "split_context"):
        if getattr(args, key) is not None:
            data_args[key] = getattr(args, key)
    data = RegionDataModule(**data_args)
    data.setup()
    fitted, probs = kmer_baseline(data, config["report"]["kmer_sizes"])
    targets = data.splits["test"].targets
    metrics = classification_metrics(data.labels.kind, targets, probs)
    figures = ", ".join(f"{name} {value:.3f}" for name, value in metrics.items())
    print(f"{args.config}: k-mer spectrum ({fitted.choice}) on {len(targets)} test regions: {figures}")


if __name__ == "__main__":
    main()
