"""The Mamba block's kernels: the selective scan (Gu & Dao 2023, arXiv:2312.00752, Algorithm 2), its causal
depthwise conv + SiLU and RMSNorm, each as a plain-torch reference and a fused numba kernel for the CPU.

The scan, for each batch element b and channel d, with the discretisation (eq. 4: zero-order hold for A,
Euler for B):

    h_t = exp(Δ_t A) ⊙ h_{t-1} + (Δ_t x_t) B_t        h: (N,), h_{-1} = 0
    y_t = C_t · h_t + D x_t

Notation (the paper's): x (B, L, ED) input, Δ (B, L, ED) step sizes (already softplus'd), A (ED, N) state
matrix (negative), B and C (B, L, N) input and output projections, D (ED,) skip. Every function here takes
and returns this (B, L, ED) layout, the one the block's Linear layers produce, so no transposes are needed.

Backends (``ScanBackend``; one choice covers the three kernels):

- ``reference``: plain torch. The scan steps through L one position at a time, differentiable by autograd,
  and never materialises the (B, L, ED, N) discretised tensors (mambapy does: 157 M values a layer at the
  benchmark's size); the conv and the norm are torch's conv1d and rms_norm, as mambapy computes them.
- ``fused``: numba kernels for the CPU, parallel over the batch, each with its backward kernel so training
  runs on the CPU too. The scan computes exp(Δ A) inside the kernel with a vectorisable exp and, backwards,
  reruns the forward to keep every h_t, then walks t in reverse. Equal to the reference to ~1e-6 in
  float32; float64 (for gradcheck) uses the exact exp.
- ``cuda``: mamba-ssm's ``selective_scan_fn`` for CUDA tensors, when that optional package is installed
  (the conv and the norm then run torch's).

``auto`` picks ``cuda`` for CUDA tensors when mamba-ssm imports, ``fused`` for float32/float64 CPU tensors,
else ``reference``. The kernels compile on first use (warm_up() compiles them all: 12-51 s on 2 shared
cores, forward kernels alone ~24 s); numba's on-disk cache (NUMBA_CACHE_DIR, else ``__pycache__`` beside
this file, else ~/.cache/numba) makes later processes load them in ~1 s. The cache is keyed by this file's
timestamp: an edit recompiles once.
"""

from __future__ import annotations

import functools
import logging
import math
from typing import Literal, get_args

import numba
import numpy as np
import torch
import torch.nn.functional as F
from numba import njit, prange

try:  # the optional CUDA kernel (pip install mamba-ssm on a GPU machine)
    from mamba_ssm.ops.selective_scan_interface import (
        selective_scan_fn as mamba_ssm_scan,
    )
except ImportError:
    mamba_ssm_scan = None

# numba's OpenMP pool and torch's (each its own libgomp) spin-wait against each other between
# calls: the fused model ran 4x slower on 2 cores than with numba's own workqueue pool. The choice is
# process-wide and takes effect at numba's first parallel call; NUMBA_THREADING_LAYER set by hand wins.
if numba.config.THREADING_LAYER == "default":
    numba.config.THREADING_LAYER = "workqueue"

log = logging.getLogger(__name__)
ScanBackend = Literal["auto", "fused", "reference", "cuda"]
SCAN_BACKENDS: tuple[str, ...] = get_args(ScanBackend)

# Cephes expf: exp(v) = 2^k exp(r), k = round(v / ln 2), |r| <= ln2 / 2, exp(r) by a degree-7 polynomial
# (relative error ~1e-7, float32's own). Written with plain arithmetic so that LLVM vectorises it:
# numba has no vector exp without Intel's SVML, and the scalar exp call was most of the scan's time.
# The constants are float32: a Python float would make numba compute in float64, at half the vector width.
LOG2E = np.float32(1.4426950408889634)
LN2_HI = np.float32(0.693359375)  # ln 2 split in two so that k * LN2_HI is exact in float32
LN2_LO = np.float32(-2.12194440e-4)
EXP_P0, EXP_P1, EXP_P2 = np.float32(1.9875691500e-4), np.float32(1.3981999507e-3), np.float32(8.3334519073e-3)
EXP_P3, EXP_P4, EXP_P5 = np.float32(4.1665795894e-2), np.float32(1.6666665459e-1), np.float32(5.0000001201e-1)
EXP_FLOOR = np.float32(-87.0)  # exp(-87) ~ 1.6e-38, the smallest normal float32: 2^k stays a normal number
HALF, ONE, ZERO = np.float32(0.5), np.float32(1.0), np.float32(0.0)
# The weight gradient of RMSNorm is summed over row blocks in a fixed order: the same for any thread count.
RMS_NORM_BLOCKS = 64


def _kernel(**options):
    """numba.njit with fastmath and the on-disk cache, or without the cache where it cannot be written.

    numba caches in NUMBA_CACHE_DIR when set, else beside this file, else in ~/.cache/numba; where none is
    writable (a read-only install and home), njit(cache=True) raises at import instead of falling back."""

    def decorate(function):
        try:
            return njit(fastmath=True, cache=True, **options)(function)
        except RuntimeError as exc:
            if "cannot cache" not in str(exc):
                raise
            _warn_uncached()
            return njit(fastmath=True, **options)(function)

    return decorate


@functools.cache
def _warn_uncached() -> None:
    log.warning("numba finds no writable cache directory (beside %s, NUMBA_CACHE_DIR or ~/.cache/numba): the kernels compile on every start", __file__)


def selective_scan(x, delta, A, B, C, D, backend: ScanBackend = "auto") -> torch.Tensor:
    """y (B, L, ED) of the selective scan by ``backend`` (see the module docstring for the shapes)."""
    backend = resolve_backend(backend, x)
    if backend == "fused":
        return FusedSelectiveScan.apply(x, delta, A, B, C, D)
    if backend == "cuda":
        # mamba-ssm's layout is (B, ED, L) and (B, N, L); Δ is already softplus'd here
        y = mamba_ssm_scan(x.transpose(1, 2), delta.transpose(1, 2), A, B.transpose(1, 2), C.transpose(1, 2), D)
        return y.transpose(1, 2)  # (B, L, ED)
    return selective_scan_reference(x, delta, A, B, C, D)


def causal_conv_silu(x, weight, bias, backend: ScanBackend = "auto") -> torch.Tensor:
    """silu(causal depthwise conv1d(x)) over L, the block's short filter: x (B, L, ED), weight (ED, K), bias (ED,).

    Fused on the CPU (one pass, and a backward that does not take torch's 1.8 s per call for a depthwise
    conv1d at the benchmark's size); torch's conv1d elsewhere, as mambapy computes it."""
    if resolve_backend(backend, x) == "fused":
        return FusedCausalConvSiLU.apply(x, weight, bias)
    return causal_conv_silu_reference(x, weight, bias)


def causal_conv_silu_reference(x, weight, bias) -> torch.Tensor:
    length, width = x.shape[1], weight.shape[1]
    x = F.conv1d(x.transpose(1, 2), weight[:, None], bias, padding=width - 1, groups=weight.shape[0])  # (B, ED, L+K-1)
    return F.silu(x[:, :, :length].transpose(1, 2))  # (B, L, ED)


def rms_norm(x, weight, eps: float, backend: ScanBackend = "auto") -> torch.Tensor:
    """x * rsqrt(mean(x^2 over the last dim) + eps) * weight (Zhang & Sennrich 2019), x (..., D).

    Fused on the CPU: torch's rms_norm there is composite, and its (..., 1) broadcast alone took 60 ms a
    call at the benchmark's size, 6x a whole layer_norm."""
    if resolve_backend(backend, x) == "fused":
        return FusedRMSNorm.apply(x, weight, eps)
    return F.rms_norm(x, (x.shape[-1],), weight, eps)


def resolve_backend(backend: str, x: torch.Tensor) -> str:
    """The backend that ``backend`` means for tensors like ``x``; an impossible explicit choice is an error."""
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"scan backend {backend!r}: expected one of {', '.join(SCAN_BACKENDS)}")
    fusable = x.device.type == "cpu" and x.dtype in (torch.float32, torch.float64)
    if backend == "auto":
        if x.is_cuda and mamba_ssm_scan is not None:
            return "cuda"
        return "fused" if fusable else "reference"
    if backend == "fused" and not fusable:
        raise ValueError(f"scan backend 'fused' runs on float32 or float64 CPU tensors, got {x.dtype} on {x.device}")
    if backend == "cuda" and (mamba_ssm_scan is None or not x.is_cuda):
        raise ValueError("scan backend 'cuda' needs mamba-ssm installed and CUDA tensors")
    return backend


def selective_scan_reference(x, delta, A, B, C, D) -> torch.Tensor:
    """The scan step by step in plain torch: slow, differentiable, the definition the others must equal."""
    batch, length, channels = x.shape
    h = x.new_zeros(batch, channels, A.shape[1])  # (B, ED, N)
    ys = []
    for t in range(length):
        decay = torch.exp(delta[:, t, :, None] * A)  # (B, ED, N)
        h = decay * h + (delta[:, t, :, None] * x[:, t, :, None]) * B[:, t, None, :]  # (B, ED, N)
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))  # (B, ED)
    return torch.stack(ys, dim=1) + D * x  # (B, L, ED)


class FusedSelectiveScan(torch.autograd.Function):
    """The fused numba scan with its reverse-scan backward (gradients for x, Δ, A, B, C and D)."""

    @staticmethod
    def forward(ctx, x, delta, A, B, C, D):
        arrays = _kernel_arrays(x, delta, A, B, C, D)
        y = torch.empty(x.shape, dtype=x.dtype)  # (B, L, ED)
        _sync_threads()
        _scan_forward(*arrays, x.dtype == torch.float64, y.numpy())
        ctx.save_for_backward(x, delta, A, B, C, D)
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x, delta, A, B, C, D = ctx.saved_tensors
        arrays = _kernel_arrays(x, delta, A, B, C, D)
        batch, length, channels = x.shape
        n_state = A.shape[1]
        grad_x, grad_delta = torch.empty_like(x), torch.empty_like(x)  # (B, L, ED)
        grad_B, grad_C = torch.empty(batch, length, n_state, dtype=x.dtype), torch.empty(batch, length, n_state, dtype=x.dtype)
        grad_A_each = torch.empty(batch, n_state, channels, dtype=x.dtype)  # (B, N, ED): summed below, no races
        grad_D_each = torch.empty(batch, channels, dtype=x.dtype)  # (B, ED)
        _sync_threads()
        _scan_backward(
            *arrays,
            x.dtype == torch.float64,
            _as_array(grad_y),
            grad_x.numpy(),
            grad_delta.numpy(),
            grad_A_each.numpy(),
            grad_B.numpy(),
            grad_C.numpy(),
            grad_D_each.numpy(),
        )
        return grad_x, grad_delta, grad_A_each.sum(0).t(), grad_B, grad_C, grad_D_each.sum(0)


class FusedCausalConvSiLU(torch.autograd.Function):
    """The fused numba causal depthwise conv + SiLU with its backward (gradients for x, weight and bias)."""

    @staticmethod
    def forward(ctx, x, weight, bias):
        out = torch.empty(x.shape, dtype=x.dtype)  # (B, L, ED)
        _sync_threads()
        _conv_silu_forward(_as_array(x), _as_array(weight.t()), _as_array(bias), x.dtype == torch.float64, out.numpy())
        ctx.save_for_backward(x, weight, bias)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        x, weight, bias = ctx.saved_tensors
        grad_x = torch.zeros(x.shape, dtype=x.dtype)  # (B, L, ED)
        grad_weight_each = torch.empty(x.shape[0], weight.shape[1], weight.shape[0], dtype=x.dtype)  # (B, K, ED)
        grad_bias_each = torch.empty(x.shape[0], weight.shape[0], dtype=x.dtype)  # (B, ED)
        _sync_threads()
        _conv_silu_backward(
            _as_array(x),
            _as_array(weight.t()),
            _as_array(bias),
            x.dtype == torch.float64,
            _as_array(grad_out),
            grad_x.numpy(),
            grad_weight_each.numpy(),
            grad_bias_each.numpy(),
        )
        return grad_x, grad_weight_each.sum(0).t(), grad_bias_each.sum(0)


class FusedRMSNorm(torch.autograd.Function):
    """The fused numba RMSNorm over the last dim with its backward (gradients for x and weight)."""

    @staticmethod
    def forward(ctx, x, weight, eps):
        rows = _as_array(x).reshape(-1, x.shape[-1])  # (M, D)
        out = torch.empty(rows.shape, dtype=x.dtype)  # (M, D)
        _sync_threads()
        _rms_norm_forward(rows, _as_array(weight), *_typed(rows, eps, 1 / rows.shape[1]), out.numpy())
        ctx.save_for_backward(x, weight)
        ctx.eps = eps
        return out.view(x.shape)

    @staticmethod
    def backward(ctx, grad_out):
        x, weight = ctx.saved_tensors
        rows = _as_array(x).reshape(-1, x.shape[-1])  # (M, D)
        grad_x = torch.empty(rows.shape, dtype=x.dtype)  # (M, D)
        grad_weight_each = torch.empty(RMS_NORM_BLOCKS, rows.shape[1], dtype=x.dtype)  # (blocks, D)
        _sync_threads()
        _rms_norm_backward(
            rows,
            _as_array(weight),
            *_typed(rows, ctx.eps, 1 / rows.shape[1]),
            _as_array(grad_out).reshape(rows.shape),
            grad_x.numpy(),
            grad_weight_each.numpy(),
        )
        return grad_x.view(x.shape), grad_weight_each.sum(0), None


def warm_up() -> None:
    """Compile (or load from numba's cache) the float32 kernels, forward and backward, on a tiny input."""
    tensors = [torch.rand(shape, requires_grad=True) for shape in ((1, 2, 3), (1, 2, 3), (3, 4), (1, 2, 4), (1, 2, 4), (3,))]
    FusedSelectiveScan.apply(*tensors).sum().backward()
    x, weight, bias = (torch.rand(shape, requires_grad=True) for shape in ((1, 5, 3), (3, 2), (3,)))
    FusedCausalConvSiLU.apply(x, weight, bias).sum().backward()
    FusedRMSNorm.apply(x, bias, 1e-5).sum().backward()


def _as_array(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().contiguous().numpy()


def _kernel_arrays(x, delta, A, B, C, D) -> tuple[np.ndarray, ...]:
    """Contiguous arrays for the kernels, A transposed to (N, ED) so the inner loops run over channels."""
    return _as_array(x), _as_array(delta), _as_array(A.t()), _as_array(B), _as_array(C), _as_array(D)


def _typed(array: np.ndarray, *values: float) -> tuple:
    """Python floats as scalars of the array's dtype (a float64 scalar would make float32 kernels compute in float64)."""
    return tuple(array.dtype.type(value) for value in values)


def _sync_threads() -> None:
    """numba's threads follow torch's (--threads), within the pool numba started with."""
    numba.set_num_threads(max(1, min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)))


@_kernel(inline="always")
def _exp_of_product(out, bits, u, v, exact):
    """out[d] = exp(u[d] v[d]) for products <= 0 (the decay exp(Δ_t A_n)); ``bits``: int32 scratch like out."""
    channels = out.shape[0]
    if exact:
        for d in range(channels):
            out[d] = math.exp(u[d] * v[d])
        return
    scale = bits.view(np.float32)
    for d in range(channels):
        v_d = max(u[d] * v[d], EXP_FLOOR)
        k = np.floor(v_d * LOG2E + HALF)
        r = v_d - k * LN2_HI - k * LN2_LO
        p = ((((EXP_P0 * r + EXP_P1) * r + EXP_P2) * r + EXP_P3) * r + EXP_P4) * r + EXP_P5
        out[d] = p * r * r + r + ONE
        bits[d] = (np.int32(k) + 127) << 23  # the float32 bit pattern of 2^k
    for d in range(channels):
        out[d] *= scale[d]


@_kernel()
def fast_exp_nonpositive(values):
    """exp of values <= 0 (those below -87 give ~1e-38) by the kernels' vectorised exp; exposed for its test."""
    out = np.empty(values.shape[0], np.float32)
    _exp_of_product(out, np.empty(values.shape[0], np.int32), values, np.ones_like(values), False)
    return out


@_kernel(parallel=True)
def _scan_forward(x, delta, A_t, B, C, D, exact, y):
    # Every inner loop writes one array: LLVM vectorises only loops whose stores it can prove independent.
    batch, length, channels = x.shape
    n_state = A_t.shape[0]
    for b in prange(batch):
        h = np.zeros((n_state, channels), x.dtype)
        decay = np.empty(channels, x.dtype)
        bits = np.empty(channels, np.int32)
        delta_x = np.empty(channels, x.dtype)
        y_t = np.empty(channels, x.dtype)
        for t in range(length):
            for d in range(channels):
                delta_x[d] = delta[b, t, d] * x[b, t, d]
            for d in range(channels):
                y_t[d] = D[d] * x[b, t, d]
            for n in range(n_state):
                _exp_of_product(decay, bits, delta[b, t], A_t[n], exact)
                b_n, c_n, h_n = B[b, t, n], C[b, t, n], h[n]
                for d in range(channels):
                    h_n[d] = decay[d] * h_n[d] + delta_x[d] * b_n
                for d in range(channels):
                    y_t[d] += h_n[d] * c_n
            y[b, t] = y_t


@_kernel(parallel=True)
def _scan_backward(x, delta, A_t, B, C, D, exact, grad_y, grad_x, grad_delta, grad_A_each, grad_B, grad_C, grad_D_each):
    """Reverse-mode of _scan_forward. Per batch element: 1. rerun the forward keeping every h_t
    (L x N x ED values, 4.9 MB at the benchmark's size); 2. walk t backwards with the adjoint
    g = dLoss/dh_t, which obeys the transposed recurrence g_{t-1} = exp(Δ_t A) ⊙ g_t + C_{t-1} dy_{t-1}."""
    batch, length, channels = x.shape
    n_state = A_t.shape[0]
    for b in prange(batch):
        # 1. forward, history[t + 1] = h_t and history[0] = h_{-1} = 0
        history = np.empty((length + 1, n_state, channels), x.dtype)
        history[0] = ZERO
        decay = np.empty(channels, x.dtype)
        bits = np.empty(channels, np.int32)
        delta_x = np.empty(channels, x.dtype)
        for t in range(length):
            for d in range(channels):
                delta_x[d] = delta[b, t, d] * x[b, t, d]
            for n in range(n_state):
                _exp_of_product(decay, bits, delta[b, t], A_t[n], exact)
                b_n = B[b, t, n]
                for d in range(channels):
                    history[t + 1, n, d] = decay[d] * history[t, n, d] + delta_x[d] * b_n
        # 2. reverse
        adjoint = np.zeros((n_state, channels), x.dtype)
        grad_A = np.zeros((n_state, channels), x.dtype)
        grad_D = np.zeros(channels, x.dtype)
        for t in range(length - 1, -1, -1):
            for d in range(channels):
                delta_x[d] = delta[b, t, d] * x[b, t, d]
                grad_x[b, t, d] = D[d] * grad_y[b, t, d]
                grad_delta[b, t, d] = ZERO
                grad_D[d] += grad_y[b, t, d] * x[b, t, d]
            for n in range(n_state):
                _exp_of_product(decay, bits, delta[b, t], A_t[n], exact)
                b_n, c_n = B[b, t, n], C[b, t, n]
                grad_b = ZERO
                grad_c = ZERO
                for d in range(channels):
                    g = adjoint[n, d] + c_n * grad_y[b, t, d]  # dLoss/dh_t
                    grad_c += grad_y[b, t, d] * history[t + 1, n, d]
                    grad_b += g * delta_x[d]
                    g_b = g * b_n  # dLoss/d(Δ_t x_t) for this n
                    grad_x[b, t, d] += g_b * delta[b, t, d]
                    g_decay = g * history[t, n, d] * decay[d]  # dLoss/d(Δ_t A) = dLoss/d(decay) * decay
                    grad_delta[b, t, d] += g_b * x[b, t, d] + g_decay * A_t[n, d]
                    grad_A[n, d] += g_decay * delta[b, t, d]
                    adjoint[n, d] = g * decay[d]
                grad_B[b, t, n] = grad_b
                grad_C[b, t, n] = grad_c
        grad_A_each[b] = grad_A
        grad_D_each[b] = grad_D


@_kernel(inline="always")
def _conv_row(out, x_b, weight_t, bias, t):
    """out[d] = bias[d] + sum_k weight[d, k] x[t - K + 1 + k, d]: the causal conv at t (zero padding before 0)."""
    width = weight_t.shape[0]
    out[:] = bias
    for k in range(max(0, width - 1 - t), width):
        source = t - width + 1 + k
        for d in range(out.shape[0]):
            out[d] += weight_t[k, d] * x_b[source, d]


@_kernel(inline="always")
def _sigmoid_row(out, bits, negative_abs, ones, pre, exact):
    """out[d] = sigmoid(pre[d]) through e = exp(-|pre|), which never overflows."""
    for d in range(pre.shape[0]):
        negative_abs[d] = -abs(pre[d])
    _exp_of_product(out, bits, negative_abs, ones, exact)
    for d in range(pre.shape[0]):
        e = out[d]
        out[d] = (ONE if pre[d] >= ZERO else e) / (ONE + e)


@_kernel(parallel=True)
def _conv_silu_forward(x, weight_t, bias, exact, out):
    batch, length, channels = x.shape
    for b in prange(batch):
        pre, sigmoid, negative_abs = np.empty(channels, x.dtype), np.empty(channels, x.dtype), np.empty(channels, x.dtype)
        ones, bits = np.ones(channels, x.dtype), np.empty(channels, np.int32)
        for t in range(length):
            _conv_row(pre, x[b], weight_t, bias, t)
            _sigmoid_row(sigmoid, bits, negative_abs, ones, pre, exact)
            for d in range(channels):
                out[b, t, d] = pre[d] * sigmoid[d]


@_kernel(parallel=True)
def _conv_silu_backward(x, weight_t, bias, exact, grad_out, grad_x, grad_weight_each, grad_bias_each):
    """grad_x must come zeroed: each output t adds into the K inputs it read."""
    batch, length, channels = x.shape
    width = weight_t.shape[0]
    for b in prange(batch):
        pre, sigmoid, negative_abs = np.empty(channels, x.dtype), np.empty(channels, x.dtype), np.empty(channels, x.dtype)
        ones, bits = np.ones(channels, x.dtype), np.empty(channels, np.int32)
        grad_pre = np.empty(channels, x.dtype)
        grad_weight = np.zeros((width, channels), x.dtype)
        grad_bias = np.zeros(channels, x.dtype)
        for t in range(length):
            _conv_row(pre, x[b], weight_t, bias, t)
            _sigmoid_row(sigmoid, bits, negative_abs, ones, pre, exact)
            for d in range(channels):
                s = sigmoid[d]
                grad_pre[d] = grad_out[b, t, d] * s * (ONE + pre[d] * (ONE - s))  # silu'(p) = s (1 + p (1 - s))
                grad_bias[d] += grad_pre[d]
            for k in range(max(0, width - 1 - t), width):
                source = t - width + 1 + k
                for d in range(channels):
                    grad_weight[k, d] += grad_pre[d] * x[b, source, d]
                    grad_x[b, source, d] += weight_t[k, d] * grad_pre[d]
        grad_weight_each[b] = grad_weight
        grad_bias_each[b] = grad_bias


@_kernel(parallel=True)
def _rms_norm_forward(x, weight, eps, inverse_width, out):
    rows, width = x.shape
    for i in prange(rows):
        mean_square = ZERO
        for j in range(width):
            mean_square += x[i, j] * x[i, j]
        inverse_rms = ONE / np.sqrt(mean_square * inverse_width + eps)
        for j in range(width):
            out[i, j] = x[i, j] * inverse_rms * weight[j]


@_kernel(parallel=True)
def _rms_norm_backward(x, weight, eps, inverse_width, grad_out, grad_x, grad_weight_each):
    """With r = rsqrt(mean(x^2) + eps) and u = grad_out * weight: grad_x = r u - x r^3 mean(u x)."""
    rows, width = x.shape
    blocks = grad_weight_each.shape[0]
    for block in prange(blocks):
        grad_weight = np.zeros(width, x.dtype)
        for i in range(block * rows // blocks, (block + 1) * rows // blocks):
            mean_square = ZERO
            projection = ZERO
            for j in range(width):
                mean_square += x[i, j] * x[i, j]
                projection += grad_out[i, j] * weight[j] * x[i, j]
            inverse_rms = ONE / np.sqrt(mean_square * inverse_width + eps)
            correction = inverse_rms * inverse_rms * inverse_rms * projection * inverse_width
            for j in range(width):
                grad_x[i, j] = inverse_rms * grad_out[i, j] * weight[j] - x[i, j] * correction
            for j in range(width):
                grad_weight[j] += grad_out[i, j] * x[i, j] * inverse_rms
        grad_weight_each[block] = grad_weight


# every numba kernel above (gensynth.denoise.kernels checks numba's cache holds each)
KERNELS = (_scan_forward, _scan_backward, _conv_silu_forward, _conv_silu_backward, _rms_norm_forward, _rms_norm_backward)
