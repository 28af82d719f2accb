"""How many optimizer steps of a pre-training config fit in a time budget on this machine: times forward, backward
and AdamW steps of the config's backbone on random tokens (bf16 autocast on a GPU), then prints
floor(budget x steps per second x margin). gpu.sh passes the answer as trainer.max_steps, so the cosine schedule ends
inside the budget instead of being cut by max_time.

    python tasks/chr20_backbone/steps_for.py tasks/chr20_backbone/pretrain_gpu.yaml --seconds 240
"""

from __future__ import annotations

import argparse
import sys
import time

import torch
import yaml

from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import causal_targets, nll_sum_and_count


def steps_per_second(cfg: LongNetConfig, batch: int, length: int, steps: int, device: torch.device) -> float:
    model = LongNet(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 4, (batch, length), device=device)
    targets = causal_targets(ids, ids < 4)
    start = 0.0
    for i in range(5 + steps):
        if i == 5:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            nll, count = nll_sum_and_count(model(ids), targets)
        (nll / count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config")
    parser.add_argument("--seconds", type=float, required=True, help="training time budget")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--margin", type=float, default=0.8, help="share of the measured rate counted on")
    args = parser.parse_args()
    config = yaml.safe_load(open(args.config))
    cfg = LongNetConfig(**{**config["model"]["backbone"], "vocab_size": 10})
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    rate = steps_per_second(cfg, config["data"]["batch_size"], config["data"]["context_length"], args.steps, device)
    steps = max(1, int(args.seconds * rate * args.margin))
    print(f"{rate:.2f} steps/s on {device}: {steps} steps in {args.seconds:.0f} s", file=sys.stderr)
    print(steps)


if __name__ == "__main__":
    main()
