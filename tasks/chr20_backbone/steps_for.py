"""How many optimizer steps of a pre-training config fit in a time budget on this machine: times forward, backward
and AdamW steps of the config's backbone on random tokens (bf16 autocast on a GPU), then prints
floor(budget x steps per second x margin). gpu.sh passes the answer as trainer.max_steps, so the cosine schedule ends
inside the budget instead of being cut by max_time.

    python tasks/chr20_backbone/steps_for.py tasks/chr20_backbone/pretrain_gpu.yaml --seconds 240
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from throughput import tokens_per_second  # noqa: E402

from genomenet.model.longnet import LongNetConfig  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--seconds", type=float, required=True, help="training time budget")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--margin", type=float, default=0.8, help="share of the measured rate counted on")
    args = parser.parse_args()
    config = yaml.safe_load(open(args.config))
    cfg = LongNetConfig(**{**config["model"]["backbone"], "vocab_size": 10})
    device = "cuda" if torch.cuda.is_available() else "cpu"
    batch, length = config["data"]["batch_size"], config["data"]["context_length"]
    rate = tokens_per_second(cfg, batch, length, args.steps, warmup=5, device=device) / (batch * length)
    steps = max(1, int(args.seconds * rate * args.margin))
    print(f"{rate:.2f} steps/s on {device}: {steps} steps in {args.seconds:.0f} s", file=sys.stderr)
    print(steps)


if __name__ == "__main__":
    main()
