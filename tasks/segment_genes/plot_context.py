"""Per-class held-out MCC against input length for the fine-tuned LongNet and its baselines (the context study):
reads results/context_<bases>.json (each run's held_out_report.json), writes results/context_study.png and prints
the table.

    python tasks/segment_genes/plot_context.py
"""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = Path(__file__).resolve().parent / "results"
CORE = ("gene", "exon", "CDS", "intron", "five_prime_UTR", "three_prime_UTR", "intergenic")


def main() -> None:
    runs = {int(p.stem.split("_")[1]): json.loads(p.read_text()) for p in sorted(HERE.glob("context_*.json"))}
    lengths = sorted(runs)
    models = list(runs[lengths[0]]["models"])
    print("| input length | " + " | ".join(f"{m} (mean MCC)" for m in models) + " |")
    print("|---:|" + "---:|" * len(models))
    for n in lengths:
        print(f"| {n:,} | " + " | ".join(f"{runs[n]['models'][m]['mean']['mcc']:.3f}" for m in models) + " |")
    print("\nper class, fine-tuned LongNet:")
    print("| class | " + " | ".join(f"{n:,}" for n in lengths) + " |")
    print("|---|" + "---:|" * len(lengths))
    for c in CORE:
        print(f"| {c} | " + " | ".join(f"{runs[n]['models'][models[0]]['per_class'][c]['mcc']:.3f}"
                                       for n in lengths) + " |")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for m in models:
        axes[0].plot(lengths, [runs[n]["models"][m]["mean"]["mcc"] for n in lengths], marker="o", label=m)
    axes[0].set(xscale="log", xlabel="input length (bases)", ylabel="mean MCC over classes", title="mean")
    axes[0].legend(fontsize="small")
    for c in CORE:
        axes[1].plot(lengths, [runs[n]["models"][models[0]]["per_class"][c]["mcc"] for n in lengths], marker="o",
                     label=c)
    axes[1].set(xscale="log", xlabel="input length (bases)", ylabel="MCC", title=f"{models[0]}, per class")
    axes[1].legend(fontsize="small")
    fig.suptitle("TAIR10 chr1 held-out blocks: MCC at base level by input length")
    fig.tight_layout()
    fig.savefig(HERE / "context_study.png", dpi=110)
    print(f"\nplot: {HERE / 'context_study.png'}")


if __name__ == "__main__":
    main()
