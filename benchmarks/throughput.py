"""Training throughput (tokens/second: forward, backward and AdamW step) of the LongNet backbone on this machine.

    python benchmarks/throughput.py                  # quickstart shape, and base shape at a short length
    python benchmarks/throughput.py --steps 5 --base-length 2048

Shapes come from configs/*.yaml (model.backbone), so the figures follow the configs. Prints a table.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import torch
import yaml

from genomenet.model.longnet import LongNet, LongNetConfig
from genomenet.model.objectives import causal_targets, nll_sum_and_count

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
VOCAB = 10  # nucleotide tokenizer


def backbone_from(config: str) -> LongNetConfig:
    backbone = yaml.safe_load((CONFIGS / config).read_text())["model"]["backbone"]
    return LongNetConfig(**{**backbone, "vocab_size": VOCAB})


def tokens_per_second(cfg: LongNetConfig, batch: int, length: int, steps: int, warmup: int = 1,
                      device: str = "cpu") -> float:
    """Mean training tokens/second over `steps` steps after `warmup` steps, random tokens (bf16 autocast on CUDA)."""
    torch.manual_seed(0)
    device = torch.device(device)
    model = LongNet(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    ids = torch.randint(0, 4, (batch, length), device=device)
    targets = causal_targets(ids, ids < 4)
    for i in range(warmup + steps):
        if i == warmup:
            synchronize(device)
            start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            nll, count = nll_sum_and_count(model(ids), targets)
        (nll / count).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    synchronize(device)
    return batch * length * steps / (time.perf_counter() - start)


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--base-length", type=int, default=2048, help="tokens per window for the base shape")
    args = parser.parse_args()
    quick, base = backbone_from("quickstart.yaml"), backbone_from("base.yaml")
    base = replace(base, gradient_checkpointing=False)
    rows = [
        ("quickstart", quick, 16, 1024),
        ("quickstart, dense attention", replace(quick, attention="dense"), 16, 1024),
        (f"base, {args.base_length} tokens", base, 1, args.base_length),
        (f"base, {args.base_length} tokens, dense", replace(base, attention="dense"), 1, args.base_length),
    ]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, float32, CPU")
    print(f"{'shape':<34} {'params':>8} {'batch x tokens':>15} {'tokens/s':>10}")
    for name, cfg, batch, length in rows:
        rate = tokens_per_second(cfg, batch, length, args.steps)
        params = LongNet(cfg).num_parameters()
        print(f"{name:<34} {params / 1e6:>7.1f}M {f'{batch} x {length}':>15} {rate:>10,.0f}", flush=True)


if __name__ == "__main__":
    main()
