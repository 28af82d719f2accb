"""Per-class held-out MCC against input length for the fine-tuned LongNet and its baselines (the context study):
reads results/<prefix>_<bases>.json or results/<prefix>_<bases>_seed<S>.json (each run's held_out_report.json),
averages over seeds, writes results/<prefix>_study.png and prints the tables.

    python tasks/segment_genes/plot_context.py                       # TAIR10 chr1 (results/context_*.json)
    python tasks/segment_genes/plot_context.py --prefix dmel_context --title "D. melanogaster chr4 held-out blocks"
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent / "results"
CORE = ("gene", "exon", "CDS", "intron", "five_prime_UTR", "three_prime_UTR", "intergenic")


def load_runs(prefix: str) -> dict[int, list[dict]]:
    """Reports by input length, one per seed."""
    pattern = re.compile(rf"{re.escape(prefix)}_(\d+)(?:_seed(\d+))?\.json")
    runs: dict[int, list[dict]] = defaultdict(list)
    for path in sorted(HERE.glob(f"{prefix}_*.json")):
        match = pattern.fullmatch(path.name)
        if match:
            runs[int(match.group(1))].append(json.loads(path.read_text()))
    if not runs:
        raise SystemExit(f"no {HERE}/{prefix}_<bases>.json reports")
    return dict(sorted(runs.items()))


def per_seed(reports: list[dict], model: str, cls: str | None = None, metric: str = "mcc") -> list[float]:
    """One metric of one model, a value per seed that ran it (a seed may leave out the baselines): its mean over the
    classes, or one class's."""
    return [r["models"][model]["mean"][metric] if cls is None else r["models"][model]["per_class"][cls][metric]
            for r in reports if model in r["models"]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="context")
    parser.add_argument("--title", default="TAIR10 chr1 held-out blocks")
    args = parser.parse_args()
    runs = load_runs(args.prefix)
    lengths = list(runs)
    models = list(runs[lengths[0]][0]["models"])
    classes = [c for c in CORE if c in runs[lengths[0]][0]["models"][models[0]]["per_class"]]
    print(f"seeds per length: { {n: len(r) for n, r in runs.items()} }")
    print("| input length | " + " | ".join(f"{m} (mean MCC)" for m in models) + " |")
    print("|---:|" + "---:|" * len(models))
    for n in lengths:
        cells = []
        for m in models:
            values = per_seed(runs[n], m)
            spread = f" ({', '.join(f'{v:.3f}' for v in values)})" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.3f}{spread}")
        print(f"| {n:,} | " + " | ".join(cells) + " |")
    print("\nmean AUPRC over classes (threshold-free):")
    print("| input length | " + " | ".join(models) + " |")
    print("|---:|" + "---:|" * len(models))
    for n in lengths:
        print(f"| {n:,} | " + " | ".join(f"{np.mean(per_seed(runs[n], m, metric='auprc')):.3f}" for m in models) + " |")
    print(f"\nper class, {models[0]}:")
    print("| class | " + " | ".join(f"{n:,}" for n in lengths) + " |")
    print("|---|" + "---:|" * len(lengths))
    for c in classes:
        print(f"| {c} | " + " | ".join(f"{np.mean(per_seed(runs[n], models[0], c)):.3f}" for n in lengths) + " |")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in models:
        axes[0].plot(lengths, [np.mean(per_seed(runs[n], m)) for n in lengths], marker="o", label=m)
    axes[0].set(xscale="log", xlabel="input length (bases)", ylabel="mean MCC over classes", title="mean")
    axes[0].legend(fontsize="small")
    for c in classes:
        axes[1].plot(lengths, [np.mean(per_seed(runs[n], models[0], c)) for n in lengths], marker="o", label=c)
    axes[1].set(xscale="log", xlabel="input length (bases)", ylabel="MCC", title=f"{models[0]}, per class")
    axes[1].legend(fontsize="small")
    fig.suptitle(f"{args.title}: MCC at base level by input length")
    fig.tight_layout()
    out = HERE / f"{args.prefix}_study.png"
    fig.savefig(out, dpi=110)
    print(f"\nplot: {out}")


if __name__ == "__main__":
    main()
