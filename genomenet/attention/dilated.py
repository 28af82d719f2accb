"""``dilated_attention``: LongNet's dilated attention, exactly the formula of docs/attention.md, "The contract"."""

from __future__ import annotations

import operator
from collections.abc import Iterable, Sequence

import torch
from torch import Tensor

from genomenet.attention.backends import select_backend
from genomenet.attention.merge import DilatedAttentionFunction
from genomenet.attention.sparsify import Branch, PreviousBlock

_DTYPES = (torch.float32, torch.float64, torch.bfloat16, torch.float16)


def dilated_attention(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    segment_lengths: Sequence[int],
    dilation_rates: Sequence[int],
    causal: bool = False,
    group=None,
    key_padding_mask: Tensor | None = None,
    backend: str | None = None,
    sliding_window: int = 0,
) -> Tensor:
    """Dilated attention of ``(batch, seq, heads, head_dim)`` tensors; returns the same shape.

    One branch per ``(w, r)``: segments of ``w`` positions, head ``h`` keeps offset ``h % r`` in each; branches are
    merged by their softmax denominators. Any length, ``w`` and ``r``; gradients are exact through the merge.
    ``key_padding_mask`` ``(batch, seq)`` is True at keys to ignore; a query left with no key outputs zeros.
    ``backend`` names a kernel (see ``available_backends``); by default the best available one runs, and
    ``last_backend()`` says which. ``group`` (a process group holding the sequence in chunks) is the
    sequence-parallel path.

    ``sliding_window`` w > 0 (causal only) adds one more branch: each query also attends to itself and the w positions
    before it, merged like the others (a key that a segment branch reaches too counts twice, as in the contract).
    """
    segment_lengths = positive_integers("segment_lengths", segment_lengths)
    dilation_rates = positive_integers("dilation_rates", dilation_rates)
    _check_arguments(q, k, v, segment_lengths, dilation_rates, key_padding_mask)
    if isinstance(causal, str) or causal not in (True, False):
        raise ValueError(f"causal must be True or False, got {causal!r}")
    causal = bool(causal)
    check_sliding_window(sliding_window, causal, group)
    if group is not None:
        from genomenet.attention.sequence_parallel import sequence_parallel_dilated_attention

        return sequence_parallel_dilated_attention(
            q, k, v, segment_lengths, dilation_rates, causal, group, key_padding_mask, backend
        )
    batch, seq_len, num_heads, _ = q.shape
    if q.numel() == 0:
        # an empty sequence, batch or head set: empty output, autograd intact (the CPU kernel dies of SIGFPE on 0 heads)
        return q + k + v
    branches = plan_branches(seq_len, segment_lengths, dilation_rates, num_heads, sliding_window)
    kernel = select_backend(q.device, q.dtype, key_padding_mask is not None or _any_masked(branches, causal), backend)
    q, k, v = (x.contiguous() for x in (q, k, v))
    return DilatedAttentionFunction.apply(q, k, v, branches, causal, key_padding_mask, kernel)


def plan_branches(seq_len: int, segment_lengths: Sequence[int], dilation_rates: Sequence[int], num_heads: int,
                  sliding_window: int = 0):
    """Branches in the order they run: plain (r = 1, unpadded) first, so the first result needs no merge.

    A sliding window w is two of them: the plain branch (w, 1) (each query's own block up to itself) and the
    previous block's keys at or after the query's offset (``PreviousBlock``).
    """
    branches = [Branch.build(seq_len, w, r, num_heads) for w, r in zip(segment_lengths, dilation_rates)]
    if sliding_window:
        branches += [Branch.build(seq_len, sliding_window, 1, num_heads),
                     PreviousBlock.build(seq_len, sliding_window, num_heads)]
    return sorted(branches, key=lambda branch: branch.run_order())


def check_sliding_window(sliding_window: int, causal: bool, group=None) -> None:
    if not isinstance(sliding_window, int) or isinstance(sliding_window, bool) or sliding_window < 0:
        raise ValueError(f"sliding_window must be a non-negative integer, got {sliding_window!r}")
    if sliding_window and not causal:
        raise ValueError("sliding_window needs causal=True (it adds the w positions before each query)")
    if sliding_window and group is not None:
        raise ValueError("sliding_window is not supported with sequence parallelism")


def _any_masked(branches: list[Branch], causal: bool) -> bool:
    return not causal and any(b.ragged for b in branches)


def positive_integers(name: str, values) -> tuple[int, ...]:
    """``values`` as a tuple of Python ints; ``ValueError`` unless it is a sequence of positive integers (numpy and
    torch integers count: anything with ``__index__`` but a bool)."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ValueError(f"{name} must be a sequence of positive integers (one per branch), got {values!r}")
    values = list(values)
    ints = []
    for x in values:
        try:
            ints.append(operator.index(x))
        except TypeError:
            ints.append(0)
        if isinstance(x, bool) or ints[-1] < 1:
            raise ValueError(f"{name} must be positive integers, got {values}")
    return tuple(ints)


def _check_arguments(q, k, v, segment_lengths, dilation_rates, key_padding_mask) -> None:
    """Raise ``ValueError`` naming what is wrong with the arguments (the branches already read by
    ``positive_integers``)."""
    if len(segment_lengths) == 0 or len(dilation_rates) == 0:
        raise ValueError("segment_lengths and dilation_rates must each hold at least one value")
    if len(segment_lengths) != len(dilation_rates):
        raise ValueError(f"segment_lengths has {len(segment_lengths)} values but dilation_rates has "
                         f"{len(dilation_rates)}; give one dilation rate per segment length")
    if q.dim() != 4:
        raise ValueError(f"q must be (batch, seq, heads, head_dim), got shape {tuple(q.shape)}")
    if k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f"q, k, v must have one shape, got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype) or q.dtype not in _DTYPES:
        raise ValueError(f"q, k, v must share one dtype of {_DTYPES}, got {q.dtype}, {k.dtype}, {v.dtype}")
    if not (q.device == k.device == v.device):
        raise ValueError("q, k, v must be on one device")
    if key_padding_mask is not None and (
        key_padding_mask.dtype != torch.bool or key_padding_mask.shape != q.shape[:2]
    ):
        raise ValueError(f"key_padding_mask must be a bool tensor of shape {tuple(q.shape[:2])}, got "
                         f"{key_padding_mask.dtype} {tuple(key_padding_mask.shape)}")
