"""GPU self-check of the cached-rows path (`dilated_attention_rows`, `LongNet.extend`), which the test suite runs only
on CPU: the rows, computed on the GPU in float32 and bfloat16, against the dense float64 reference at those rows
(tests/dense_reference.py); and extend against the whole sequence's rows on the GPU. Prints one line per check and
exits 1 if any is off.

    python benchmarks/gpu_rows_check.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from dense_reference import dense_dilated_attention  # noqa: E402

from genomenet.attention.rows import dilated_attention_rows  # noqa: E402
from genomenet.model.longnet import LongNet, LongNetConfig  # noqa: E402

SHAPES = [(100, [16, 40, 100], [1, 3, 5], 4, 8), (1024, [256, 512, 1024], [1, 2, 4], 8, 32),
          (2000, [128, 2048], [1, 8], 4, 64), (77, [10, 200], [3, 1], 2, 16)]
TOLERANCE = {torch.float32: 2e-3, torch.bfloat16: 6e-2}


def rows_error(n: int, segments: list, rates: list, heads: int, dim: int, dtype: torch.dtype) -> float:
    torch.manual_seed(n)
    q, k, v = (torch.randn(4, n, heads, dim, dtype=torch.float64) for _ in range(3))
    expected = dense_dilated_attention(q, k, v, segments, rates, causal=True)
    s = min(40, n // 2)
    starts = torch.tensor([0, n // 3, n - s, n // 2])
    lengths = torch.tensor([s, s // 2, s, 1])
    index = (starts[:, None] + torch.arange(s)).clamp_max(n - 1)
    rows = tuple(torch.stack([x[b, index[b]] for b in range(4)]).to("cuda", dtype) for x in (q, k, v))
    past = tuple(x.to("cuda", dtype) for x in (q, k, v))
    out = dilated_attention_rows(rows, starts.cuda(), lengths.cuda(), past, torch.arange(4).cuda(), segments, rates)
    return max(float((out[b, :lengths[b]].double().cpu() - expected[b, starts[b]:starts[b] + lengths[b]]).abs().max())
               for b in range(4))


def extend_error(dtype: torch.dtype) -> float:
    torch.manual_seed(0)
    cfg = LongNetConfig(vocab_size=6, n_layers=2, d_model=64, n_heads=4, segment_lengths=[64, 128, 256],
                        dilation_rates=[1, 2, 4])
    model = LongNet(cfg).cuda().eval()
    n, s = 256, 24
    reference = torch.randint(0, 4, (3, n), device="cuda")
    variant = reference.clone()
    starts = torch.tensor([5, 117, 240], device="cuda")
    variant[torch.arange(3), starts] = (variant[torch.arange(3), starts] + 1) % 4
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype == torch.bfloat16):
        _, cache = model.prefill(reference)
        whole = model.hidden_states(variant)
        index = (starts[:, None] + torch.arange(s, device="cuda")).clamp_max(n - 1)
        lengths = (n - starts).clamp_max(s)
        rows = model.extend(torch.stack([variant[b, index[b]] for b in range(3)]), starts, lengths, cache,
                            torch.arange(3, device="cuda"))
    return max(float((rows[b, :lengths[b]].float() - whole[b, starts[b]:starts[b] + lengths[b]].float()).abs().max())
               for b in range(3))


def main() -> None:
    if not torch.cuda.is_available():
        sys.exit("gpu_rows_check: no CUDA device")
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}")
    failed = False
    for dtype in (torch.float32, torch.bfloat16):
        for n, segments, rates, heads, dim in SHAPES:
            err = rows_error(n, segments, rates, heads, dim, dtype)
            ok = err <= TOLERANCE[dtype]
            failed |= not ok
            print(f"rows {str(dtype):<15} n={n:<5} w={segments} r={rates} h={heads} d={dim}: max |err| {err:.2e} "
                  f"{'ok' if ok else 'FAIL'}")
        err = extend_error(dtype)
        ok = err <= 5 * TOLERANCE[dtype]
        failed |= not ok
        print(f"extend vs whole sequence {str(dtype):<15}: max |err| {err:.2e} {'ok' if ok else 'FAIL'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
