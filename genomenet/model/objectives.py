"""Training objectives over token ids: causal LM (next token) and masked LM (BERT-style), and their metrics.

Losses are returned as (sum of negative log-likelihood in nats, number of scored tokens) so that callers can add them
over batches and devices before dividing: the mean over a whole held-out set, not a mean of batch means.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor

if TYPE_CHECKING:
    import numpy as np

IGNORE = -100
"""Target id that the loss skips."""


@dataclass
class ObjectiveConfig:
    """What the model learns to predict."""

    kind: Literal["causal", "masked"] = "causal"
    """causal: each token from the ones before it (causal attention); masked: masked tokens from both sides."""
    mask_probability: float = 0.15
    """Masked LM: fraction of scorable tokens chosen as targets (of those 80% -> [MASK], 10% random, 10% kept)."""


def causal_targets(input_ids: Tensor, scorable: Tensor) -> Tensor:
    """Targets (b, n) for next-token prediction: position t predicts token t+1; the last position and unscorable
    tokens (padding, N, specials) are IGNORE."""
    targets = torch.full_like(input_ids, IGNORE)
    targets[:, :-1] = torch.where(scorable[:, 1:], input_ids[:, 1:], IGNORE)
    return targets


def mask_tokens(
    input_ids: Tensor,
    scorable: Tensor,
    mask_id: int,
    replacement_ids: Tensor,
    probability: float = 0.15,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """BERT masking: (inputs, targets). A scorable token becomes a target with `probability`; a target's input is
    [MASK] 80% of the time, a random id from `replacement_ids` 10%, itself 10%. Non-targets are IGNORE."""
    u = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    chosen = scorable & (u < probability)
    how = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    pick = torch.randint(len(replacement_ids), input_ids.shape, generator=generator, device=input_ids.device)
    inputs = torch.where(chosen & (how < 0.8), mask_id, input_ids)
    inputs = torch.where(chosen & (how >= 0.8) & (how < 0.9), replacement_ids.to(input_ids.device)[pick], inputs)
    return inputs, torch.where(chosen, input_ids, IGNORE)


def token_nll(logits: Tensor, targets: Tensor) -> Tensor:
    """Negative log-likelihood in nats per position (b, n); zero where the target is IGNORE."""
    nll = F.cross_entropy(logits.flatten(0, 1).float(), targets.flatten(), ignore_index=IGNORE, reduction="none")
    return nll.view(targets.shape)


def nll_sum_and_count(logits: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
    """Sum of NLL in nats over scored positions, and how many were scored."""
    return token_nll(logits, targets).sum(), (targets != IGNORE).sum()


def bits_per_base(
    nll_nats: float | Tensor | np.ndarray, n_tokens: int | Tensor | np.ndarray, bases_per_token: int = 1
) -> float | Tensor | np.ndarray:
    """Bits per nucleotide from a sum of token NLL in nats over `n_tokens` tokens: NLL in bits divided by the bases
    the tokens cover (k per token for k-mer tokens). The one definition every metric, table and report uses; NaN
    when no token was scored."""
    if isinstance(n_tokens, int | float) and n_tokens == 0:
        return float("nan")
    return nll_nats / (n_tokens * bases_per_token * math.log(2))


def perplexity(nll_nats: float | Tensor, n_tokens: int | Tensor) -> float | Tensor:
    """Per-token perplexity, exp(mean NLL in nats)."""
    mean = nll_nats / n_tokens
    return torch.exp(mean) if isinstance(mean, Tensor) else math.exp(mean)
