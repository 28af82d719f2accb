"""dilated_attention equals the dense float64 formula of docs/attention.md, "The contract", outputs and gradients."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from dense_reference import dense_dilated_attention

from genomenet.attention import DilatedMultiheadAttention, available_backends, dilated_attention, last_backend

CPU_BACKENDS = ["torch-cpu-flash", "chunked"]


def random_qkv(n, heads, dim=8, batch=2, dtype=torch.float64):
    return [torch.randn(batch, n, heads, dim, dtype=dtype, requires_grad=True) for _ in range(3)]


def outputs_and_grads(fn, q, k, v, grad):
    out = fn(q, k, v)
    return (out, *torch.autograd.grad(out, (q, k, v), grad))


def assert_matches_reference(n, heads, segments, dilations, causal, backend, dtype=torch.float64, tol=1e-10,
                             key_padding_mask=None, batch=2, sliding_window=0):
    q, k, v = random_qkv(n, heads, dtype=dtype, batch=batch)
    grad = torch.randn(batch, n, heads, q.shape[-1], dtype=dtype)
    got = outputs_and_grads(
        lambda q, k, v: dilated_attention(q, k, v, segments, dilations, causal, key_padding_mask=key_padding_mask,
                                          backend=backend, sliding_window=sliding_window), q, k, v, grad)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    want = outputs_and_grads(
        lambda q, k, v: dense_dilated_attention(q, k, v, segments, dilations, causal, key_padding_mask,
                                                sliding_window),
        q64, k64, v64, grad.double())
    for name, g, w in zip(("out", "dq", "dk", "dv"), got, want):
        assert torch.isfinite(g).all(), f"{name} has NaN or inf"
        err = (g.double() - w).abs().max().item()
        scale = w.abs().max().item()
        assert err <= tol * max(scale, 1.0), f"{name}: max error {err:.3g} (reference scale {scale:.3g})"


GEOMETRIES = {
    "length_multiple_of_segments": (64, 4, (16, 32), (1, 2)),
    "length_not_multiple_of_segment": (50, 4, (16, 32), (1, 2)),
    "dilation_does_not_divide_segment": (72, 6, (6, 12, 20), (1, 4, 6)),
    "segment_longer_than_sequence": (40, 3, (16, 100), (1, 3)),
    "single_head": (37, 1, (8, 16), (1, 2)),
    "twelve_heads_paper_ratios_scaled": (150, 12, (8, 16, 32, 64, 128), (1, 2, 4, 6, 12)),
    "no_plain_branch": (45, 5, (10, 30), (2, 3)),
    "one_position": (1, 2, (4,), (2,)),
}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
@pytest.mark.parametrize("geometry", GEOMETRIES.values(), ids=GEOMETRIES.keys())
def test_dilated_attention_matches_dense_reference(geometry, causal, backend):
    n, heads, segments, dilations = geometry
    assert_matches_reference(n, heads, segments, dilations, causal, backend)


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_float32_matches_float64_reference_within_float32_tolerance(causal):
    assert_matches_reference(96, 4, (16, 32, 48), (1, 2, 6), causal, None, dtype=torch.float32, tol=2e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_half_precision_matches_reference_within_half_tolerance(dtype, causal):
    assert_matches_reference(128, 4, (32, 64), (1, 2), causal, None, dtype=dtype, tol=3e-2)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_key_padding_mask_removes_keys_and_empty_queries_output_zero(causal, backend):
    mask = torch.rand(2, 61) < 0.4
    mask[0, :12] = True     # a whole first segment padded: its queries see no key at all
    assert_matches_reference(61, 5, (6, 12, 100), (1, 4, 5), causal, backend, key_padding_mask=mask)
    q, k, v = random_qkv(61, 5)
    out = dilated_attention(q, k, v, (6,), (1,), causal, key_padding_mask=mask, backend=backend)
    assert torch.all(out[0, :6] == 0)


def test_queries_no_branch_keeps_output_zero_not_nan():
    q, k, v = random_qkv(32, 2)
    out = dilated_attention(q, k, v, (8,), (2,), causal=True)
    # head 0 keeps even offsets, head 1 odd ones; the rest of each head is untouched by the only branch
    assert torch.all(out[:, 1::2, 0] == 0) and torch.all(out[:, 0::2, 1] == 0)
    out.sum().backward()
    assert all(torch.isfinite(x.grad).all() for x in (q, k, v))


@pytest.mark.slow
@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_paper_configuration_matches_reference(causal):
    """LongNet's w = 2048..32768, r = 1, 2, 4, 6, 12 at a length the dense reference affords."""
    assert_matches_reference(2600, 12, (2048, 4096, 8192, 16384, 32768), (1, 2, 4, 6, 12), causal, None,
                             dtype=torch.float32, tol=2e-5, batch=1)


def test_gradients_flow_through_merge_weights():
    """The official implementation detaches the merge weights; ours must not (compare to a detached version)."""
    q, k, v = random_qkv(64, 2)
    out = dilated_attention(q, k, v, (16, 64), (1, 2), causal=False)
    (dq,) = torch.autograd.grad(out.pow(2).sum(), (q,))
    q2 = q.detach().clone().requires_grad_()
    ref = dense_dilated_attention(q2, k.detach(), v.detach(), (16, 64), (1, 2))
    (dq_ref,) = torch.autograd.grad(ref.pow(2).sum(), (q2,))
    torch.testing.assert_close(dq, dq_ref, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_a_second_derivative_is_refused_not_silently_wrong(backend):
    """The backward treats the merged out and lse as constants; through ``chunked`` a second derivative came out
    about 20% off instead of failing."""
    q, k, v = random_qkv(12, 2, batch=1)
    out = dilated_attention(q, k, v, (12,), (1,), backend=backend)
    dq, = torch.autograd.grad(out.pow(2).sum(), q, create_graph=True)
    with pytest.raises(RuntimeError, match="once_differentiable"):
        dq.pow(2).sum().backward()


def test_backend_override_is_used_and_reported(monkeypatch):
    q, k, v = random_qkv(16, 2)
    dilated_attention(q, k, v, (8,), (1,), backend="chunked")
    assert last_backend() == "chunked"
    monkeypatch.setenv("GENOMENET_ATTENTION_BACKEND", "torch-cpu-flash")
    dilated_attention(q, k, v, (8,), (1,))
    assert last_backend() == "torch-cpu-flash"
    monkeypatch.delenv("GENOMENET_ATTENTION_BACKEND")
    dilated_attention(q, k, v, (8,), (1,))
    assert last_backend() == "torch-cpu-flash"  # the automatic choice on CPU
    assert set(CPU_BACKENDS) <= set(available_backends())


@pytest.mark.parametrize(
    "segments, dilations, message",
    [((), (), "at least one"), ((8, 16), (1,), "one dilation rate per segment"), ((8, 0), (1, 2), "positive"),
     ((8,), (-1,), "positive"), ((8.0,), (1,), "positive")],
)
def test_invalid_branch_arguments_raise_value_error(segments, dilations, message):
    q, k, v = random_qkv(16, 2)
    with pytest.raises(ValueError, match=message):
        dilated_attention(q, k, v, segments, dilations)


def test_branch_values_may_be_numpy_or_torch_integers_and_must_be_sequences():
    """An engineer's np.int64 segment lengths are positive integers ("must be positive integers, got
    [np.int64(8)]" said otherwise); a bare int was a TypeError ("object of type 'int' has no len()")."""
    import numpy as np

    q, k, v = random_qkv(16, 2)
    want = dilated_attention(q, k, v, (8, 16), (1, 2))
    torch.testing.assert_close(dilated_attention(q, k, v, np.array([8, 16]), [np.int64(1), np.int32(2)]), want)
    torch.testing.assert_close(dilated_attention(q, k, v, torch.tensor([8, 16]), (1, 2)), want)
    with pytest.raises(ValueError, match="segment_lengths must be a sequence of positive integers"):
        dilated_attention(q, k, v, 8, (1,))
    with pytest.raises(ValueError, match="dilation_rates must be positive integers"):
        dilated_attention(q, k, v, (8,), (True,))
    with pytest.raises(ValueError, match="dilation_rates must be positive integers"):
        dilated_attention(q, k, v, (8,), np.array([1.0]))
    layer = DilatedMultiheadAttention(8, 2, np.array([4, 8]), np.array([1, 2]))
    assert layer.segment_lengths == (4, 8) and type(layer.dilation_rates[1]) is int


def test_causal_must_be_a_boolean():
    import numpy as np

    q, k, v = random_qkv(16, 2)
    torch.testing.assert_close(dilated_attention(q, k, v, (8,), (1,), causal=np.bool_(True)),
                               dilated_attention(q, k, v, (8,), (1,), causal=True))
    for wrong in ("yes", "False", None, [True]):
        with pytest.raises(ValueError, match="causal must be True or False"):
            dilated_attention(q, k, v, (8,), (1,), causal=wrong)


def test_invalid_tensors_raise_value_error():
    q, k, v = random_qkv(16, 2)
    with pytest.raises(ValueError, match="one shape"):
        dilated_attention(q, k[:, :8], v, (8,), (1,))
    with pytest.raises(ValueError, match=r"\(batch, seq, heads, head_dim\)"):
        dilated_attention(q[0], k[0], v[0], (8,), (1,))
    with pytest.raises(ValueError, match="dtype"):
        dilated_attention(q, k.float(), v, (8,), (1,))
    with pytest.raises(ValueError, match="key_padding_mask"):
        dilated_attention(q, k, v, (8,), (1,), key_padding_mask=torch.zeros(2, 15, dtype=torch.bool))
    with pytest.raises(ValueError, match="unknown attention backend"):
        dilated_attention(q, k, v, (8,), (1,), backend="nope")


def test_empty_inputs_give_empty_outputs_and_gradients():
    """Zero heads used to kill the process with SIGFPE inside the CPU flash kernel; run in a subprocess so a
    regression fails this test instead of the whole session."""
    code = (
        "import torch; from genomenet.attention import dilated_attention\n"
        "for shape in [(2, 0, 3, 8), (0, 5, 3, 8), (2, 5, 0, 8)]:\n"
        "    for backend in ('torch-cpu-flash', 'chunked'):\n"
        "        for causal in (False, True):\n"
        "            q, k, v = (torch.zeros(shape, requires_grad=True) for _ in range(3))\n"
        "            out = dilated_attention(q, k, v, (4, 8), (1, 2), causal, backend=backend)\n"
        "            assert out.shape == shape, out.shape\n"
        "            out.sum().backward()\n"
        "            assert q.grad.shape == shape and k.grad.shape == shape and v.grad.shape == shape\n"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=Path(__file__).resolve().parents[1])
    assert run.returncode == 0, f"exit status {run.returncode}: {run.stderr[-500:]}"


def test_a_kernel_that_disagrees_with_the_reference_is_skipped(monkeypatch):
    """GPU kernels are self-checked once against the chunked reference; a wrong one must never be chosen."""
    from genomenet.attention import backends

    class WrongGradients(backends.TorchCPUFlash):
        name = "wrong"

        def backward(self, *args):
            return tuple(2 * g for g in super().backward(*args))

    class Right(backends.TorchCPUFlash):
        name = "right"

    monkeypatch.setattr(backends, "_BACKENDS", {"wrong": WrongGradients(), "right": Right(), "chunked":
                                                 backends.Chunked()})
    monkeypatch.setattr(backends, "_checked", {})
    with pytest.warns(UserWarning, match="wrong disagrees"):
        chosen = backends.select_backend(torch.device("cpu"), torch.float32, has_mask=False)
    assert chosen.name == "right"


@pytest.mark.parametrize("causal", [False, True], ids=["bidirectional", "causal"])
def test_bfloat16_branch_merge_accumulates_in_float32(causal):
    """The paper's five branches (scaled: w = 64..1024, r = 1..16) in bfloat16: merged in float32, the output and
    gradients sit close to the float64 reference rounded to bfloat16; a bfloat16 running output (one rounding per merge)
    or bfloat16 gradient sums land about 1.5x further off on the rows all five branches keep (four merges each)."""
    n, heads, dim, segments, dilations = 1024, 8, 32, (64, 128, 256, 512, 1024), (1, 2, 4, 8, 16)
    gen = torch.Generator().manual_seed(0)
    q, k, v, grad = (torch.randn(1, n, heads, dim, generator=gen).bfloat16() for _ in range(4))
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    got = outputs_and_grads(lambda q, k, v: dilated_attention(q, k, v, segments, dilations, causal), q, k, v, grad)
    q64, k64, v64 = (x.detach().double().requires_grad_() for x in (q, k, v))
    want = outputs_and_grads(lambda q, k, v: dense_dilated_attention(q, k, v, segments, dilations, causal),
                             q64, k64, v64, grad.double())
    pos = torch.arange(n)
    every_branch = torch.stack([torch.stack([pos % w % r == h % r for w, r in zip(segments, dilations)]).all(0)
                                for h in range(heads)], dim=-1)                        # (n, heads)
    assert got[0].dtype == torch.bfloat16
    for name, g, w, limit in zip(("out", "dq", "dk", "dv"), got, want, (1.6, 2.05, 2.05, 2.05)):
        err = (g.double() - w)[:, every_branch].pow(2).mean().sqrt().item()
        floor = (w.bfloat16().double() - w)[:, every_branch].pow(2).mean().sqrt().item()  # rounding the exact answer
        assert err <= limit * floor, f"{name}: rms error {err:.3g} is {err / floor:.2f}x bfloat16 rounding"
        assert (g.double() - w).abs().max() <= 1e-2 * w.abs().max(), f"{name}: max error off in some row"


SLIDING = {
    "length_multiple_of_window": (64, 4, (32,), (2,), 16),
    "length_not_multiple_of_window": (50, 4, (16, 32), (2, 4), 12),
    "window_longer_than_sequence": (20, 2, (8,), (2,), 32),
    "window_of_one": (17, 3, (8,), (1,), 1),
    "with_a_plain_branch_of_the_same_length": (48, 4, (8, 24), (1, 3), 8),
}


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("geometry", SLIDING.values(), ids=SLIDING.keys())
def test_sliding_window_branch_matches_dense_reference(geometry, backend):
    n, heads, segments, dilations, window = geometry
    assert_matches_reference(n, heads, segments, dilations, True, backend, sliding_window=window)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_sliding_window_with_key_padding_matches_dense_reference(backend):
    mask = torch.rand(2, 45) < 0.3
    mask[0, 10:30] = True   # a query whose whole window is padding, except itself
    assert_matches_reference(45, 4, (16,), (2,), True, backend, key_padding_mask=mask, sliding_window=10)


def test_sliding_window_reaches_itself_and_the_window_before_it():
    """With uniform scores (q = 0) the output is the mean of the values a query reaches: v = one-hot positions reads
    off the key multiset. Branch (1, 1) reaches each query itself; the window adds it again and its w predecessors."""
    n, w = 12, 4
    q = torch.zeros(1, n, 1, n, dtype=torch.float64)
    k = torch.randn(1, n, 1, n, dtype=torch.float64)
    v = torch.eye(n, dtype=torch.float64)[None, :, None, :]       # (1, n, 1, n): position p's value is e_p
    out = dilated_attention(q, k, v, (1,), (1,), causal=True, sliding_window=w)[0, :, 0]
    for p in range(n):
        reached = torch.zeros(n, dtype=torch.float64)
        reached[max(0, p - w): p + 1] += 1
        reached[p] += 1
        torch.testing.assert_close(out[p], reached / reached.sum())


@pytest.mark.parametrize(("dtype", "tol"), [(torch.float32, 2e-5), (torch.bfloat16, 3e-2), (torch.float16, 3e-2)])
def test_sliding_window_in_lower_precision_matches_float64_reference(dtype, tol):
    assert_matches_reference(300, 4, (128, 256), (2, 4), True, None, dtype=dtype, tol=tol, sliding_window=64)


def test_sliding_window_arguments_are_checked():
    q, k, v = random_qkv(16, 2)
    with pytest.raises(ValueError, match="causal"):
        dilated_attention(q, k, v, (8,), (1,), causal=False, sliding_window=4)
    with pytest.raises(ValueError, match="non-negative integer"):
        dilated_attention(q, k, v, (8,), (1,), causal=True, sliding_window=-1)
    with pytest.raises(ValueError, match="sequence parallelism"):
        dilated_attention(q, k, v, (8,), (1,), causal=True, sliding_window=4, group=object())
