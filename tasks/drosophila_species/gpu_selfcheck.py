"""Which attention kernels pass their start-up self-check on this GPU (genomenet/attention/backends.py): each fused
backend's forward, log-sum-exp and merged-lse backward against the chunked reference, per dtype and mask. Prints one
line per case with the error a failing kernel raised, and which backend a model would use.

    python tasks/drosophila_species/gpu_selfcheck.py
"""

from __future__ import annotations

import torch

from genomenet.attention import backends


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    print(f"torch {torch.__version__} on {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}")
    for name in backends.available_backends():
        backend = backends._BACKENDS[name]
        for dtype in (torch.float32, torch.bfloat16):
            for has_mask in (False, True):
                if not backend.supports(device, dtype, has_mask):
                    continue
                try:
                    verdict = "agrees" if backends._compare_with_chunked(backend, device, dtype, has_mask) else \
                        "DISAGREES"
                except Exception as err:  # noqa: BLE001 - report what the kernel raised
                    verdict = f"FAILS: {type(err).__name__}: {str(err).splitlines()[0][:160]}"
                print(f"{name:>22} {str(dtype):>15} mask={has_mask!s:>5}: {verdict}", flush=True)
    chosen = {dtype: backends.select_backend(device, dtype, False).name for dtype in (torch.float32, torch.bfloat16)}
    print(f"selected without a mask: {chosen}")

if __name__ == "__main__":
    main()
