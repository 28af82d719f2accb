"""An independent dense float64 reference for dilated attention, written from docs/attention.md, "The contract" alone.

It builds the full (N x N) score matrix per branch with an explicit keep-mask, so it shares no code with the
package: a key is reachable from a query in branch (w, r) for head h iff both sit in one segment, both have offset
h % r in it, and (causal) the key is not after the query.
"""

import torch


def branch_mask(n: int, w: int, r: int, head: int, causal: bool) -> torch.Tensor:
    pos = torch.arange(n)
    segment = pos // w
    kept = (pos - segment * w) % r == head % r
    mask = (segment[:, None] == segment[None, :]) & kept[:, None] & kept[None, :]
    if causal:
        mask &= pos[None, :] <= pos[:, None]
    return mask  # (query, key)


def sliding_mask(n: int, window: int) -> torch.Tensor:
    """The sliding-window branch: each query sees itself and the ``window`` positions before it."""
    pos = torch.arange(n)
    distance = pos[:, None] - pos[None, :]
    return (distance >= 0) & (distance <= window)   # (query, key)


def dense_dilated_attention(q, k, v, segment_lengths, dilation_rates, causal=False, key_padding_mask=None,
                            sliding_window=0):
    """Softmax over the multiset union of each query's branch keys, in float64; autograd gives the gradients."""
    b, n, h, d = q.shape
    q, k, v = (x.double() for x in (q, k, v))
    outs = []
    for head in range(h):
        weights = torch.zeros(b, n, n, dtype=torch.float64)          # multiplicity of each (query, key) pair
        for w, r in zip(segment_lengths, dilation_rates):
            weights += branch_mask(n, min(w, n), r, head, causal).double()
        if sliding_window:
            weights += sliding_mask(n, sliding_window).double()
        if key_padding_mask is not None:
            weights = weights * (~key_padding_mask)[:, None, :].double()
        s = torch.einsum("bqd,bkd->bqk", q[:, :, head], k[:, :, head]) / d**0.5   # (b, n, n)
        top = s.masked_fill(weights == 0, float("-inf")).amax(-1, keepdim=True)
        top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
        p = weights * torch.exp(s - top)
        denom = p.sum(-1, keepdim=True)
        p = torch.where(denom > 0, p / denom.clamp_min(1e-300), torch.zeros_like(p))
        outs.append(p @ v[:, :, head])
    return torch.stack(outs, dim=2)  # (b, n, h, d)
