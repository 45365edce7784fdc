"""Eigen-spectrum of the denoiser's Jacobian, the MADness signal.

For a probe ``x_t`` (C, H, W) at timestep ``t`` with condition ``y``, let
``J = d eps_theta(x_t, t, y) / d x_t``, a ``D x D`` matrix with ``D = C H W``. This module
returns the eigenvalues of ``J^T J`` (the squared singular values of ``J``), descending.

Two methods, the same numbers where both apply:

``exact``
    1. ``J`` with ``torch.func.jacrev`` (one forward pass, ``D`` vector-Jacobian products,
       ``rows_per_pass`` of them batched per backward pass), vmapped over groups of probes;
    2. the singular values of ``J`` in float64 (``torch.linalg.svdvals``), squared: all ``D``.

    Cost grows with ``D`` backward passes plus an ``O(D^3)`` decomposition: right for
    16x16 and 28x28 images, out of reach at 128x128 (16,384 dimensions).

``lanczos``
    The top ``k`` by ARPACK's implicitly restarted Lanczos (``scipy.sparse.linalg.eigsh``)
    on the matrix-free operator ``v -> J^T (J v)``, never forming ``J``:

    1. one forward pass records ``u -> J^T u`` (``torch.func.vjp``);
    2. that map is linear in ``u``, so its own vector-Jacobian product is ``v -> J v``
       (``torch.func.vjp`` of the first map): no forward-mode AD, and unlike
       ``torch.func.jvp`` it does not recompute the forward pass at every product;
    3. each Lanczos step applies both maps: ``J^T J v`` costs about three forward passes
       (1.2 s at 128x128 for the 32/64/64 UNet of ``scripts/bench_jacobian.py`` on 2 CPU
       cores, where exact takes 0.58 s per Jacobian row: top-50 in 433 products, 517 s,
       against a projected 1.0e4 s for exact).

``auto`` uses ``exact`` up to :data:`EXACT_MAX_DIM` dimensions and ``lanczos`` above.

diffusers' default attention processor calls fused scaled-dot-product attention, whose CPU
kernel has no second derivative (needed by step 2) nor forward-mode derivative. While a
spectrum is computed, each ``Attention`` module of the model it is given runs
``AttnProcessor`` (the same attention in plain matmul and softmax); the model's processors,
train/eval mode and ``requires_grad`` flags are restored afterwards.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator

import numpy as np
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor
from scipy.sparse.linalg import ArpackNoConvergence, LinearOperator, eigsh
from torch.func import jacrev, vjp, vmap

from ..errors import GensynthError
from ..progress import progress
from ..seeding import numpy_generator, sha256_seed
from .settings import JACOBIAN_METHODS
from .settings import JacobianMethod as Method

EXACT_MAX_DIM = 1024  # auto: exact up to 32x32x1 (covers 16x16 and MNIST's 28x28)
LANCZOS_TOL = 1e-4  # ARPACK's residual tolerance, relative to each eigenvalue
ROWS_PER_PASS_ELEMENTS = 2**16  # default rows_per_pass = this // D: ~0.5-3 GB per pass for the 32/64/64 UNet


@contextlib.contextmanager
def jacobian_ready(unet: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """The model in eval mode, with differentiable-twice attention and frozen weights, for the block.

    On CUDA, TF32 is off for the block: its 10-bit mantissa would blur the spectrum at 1e-3.
    """
    processors = {module: module.processor for module in unet.modules() if isinstance(module, Attention)}
    grad_flags = [(param, param.requires_grad) for param in unet.parameters()]
    was_training = unet.training
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        for module in processors:
            module.set_processor(AttnProcessor())
        for param, _ in grad_flags:
            param.requires_grad_(False)
        yield unet.eval()
    finally:
        for module, processor in processors.items():
            module.set_processor(processor)
        for param, flag in grad_flags:
            param.requires_grad_(flag)
        unet.train(was_training)
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def denoiser(unet: torch.nn.Module, timestep: torch.Tensor, label: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """``x (C, H, W) -> eps_theta(x, t, y) (C, H, W)`` for one probe's timestep and label (0-d tensors)."""

    def eps(x: torch.Tensor) -> torch.Tensor:
        return unet(x[None], timestep[None], class_labels=label[None]).sample[0]  # (C, H, W)

    return eps


def exact_spectrum(
    unet: torch.nn.Module,
    probes: torch.Tensor,
    timesteps: torch.Tensor,
    labels: torch.Tensor,
    rows_per_pass: int | None = None,
    show_progress: bool | None = None,
) -> np.ndarray:
    """All ``D`` eigenvalues of ``J^T J`` per probe, descending: (P, D) float64.

    ``rows_per_pass`` Jacobian rows share one backward pass (memory grows with it); several
    probes share a pass when ``D`` is smaller than it.
    """
    probes, timesteps, labels = _check_probes(unet, probes, timesteps, labels)
    count, dim = probes.shape[0], math.prod(probes.shape[1:])
    rows = _rows_per_pass(rows_per_pass, dim)
    group = max(1, min(count, rows // dim))  # probes per vmapped pass

    def eps(x, t, y):  # one probe: (C, H, W), (), () -> (C, H, W)
        return denoiser(unet, t, y)(x)

    jacobians = vmap(jacrev(eps, chunk_size=max(1, min(dim, rows // group))))  # (G, C, H, W) -> (G, C, H, W, C, H, W)
    spectra = np.empty((count, dim))
    with jacobian_ready(unet):
        for start in progress(range(0, count, group), desc="Exact Jacobians", unit="group", show=show_progress):
            batch = slice(start, start + group)
            jac = jacobians(probes[batch], timesteps[batch], labels[batch]).reshape(-1, dim, dim)  # (G, D, D)
            singular = torch.linalg.svdvals(jac.double())  # (G, D), descending
            spectra[batch] = (singular**2).cpu().numpy()
    return spectra


def lanczos_spectrum(
    unet: torch.nn.Module,
    probes: torch.Tensor,
    timesteps: torch.Tensor,
    labels: torch.Tensor,
    k: int = 50,
    tol: float = LANCZOS_TOL,
    ncv: int | None = None,
    seed: int = 0,
    products: list[int] | None = None,
    show_progress: bool | None = None,
) -> np.ndarray:
    """The top ``k`` eigenvalues of ``J^T J`` per probe by matrix-free Lanczos, descending: (P, k).

    ``tol`` bounds each Ritz pair's residual relative to its eigenvalue; ``ncv`` is the Lanczos
    basis size (ARPACK's default ``2k + 1``); the start vector of probe ``i`` is drawn from
    ``sha256_seed("jacobian-lanczos", seed, i)``, so the result is reproducible. A ``products``
    list gets the number of ``J^T J v`` products each probe took (for benchmarks).
    """
    probes, timesteps, labels = _check_probes(unet, probes, timesteps, labels)
    count, dim = probes.shape[0], math.prod(probes.shape[1:])
    if not 1 <= k < dim:
        raise GensynthError(f"Lanczos k = {k}: expected 1 <= k < {dim} (the probe dimension); use method='exact' for all eigenvalues")
    spectra = np.empty((count, k))
    with jacobian_ready(unet):
        for index in progress(range(count), desc="Lanczos spectra", unit="probe", show=show_progress):
            operator = gram_operator(unet, probes[index], timesteps[index], labels[index])
            start = numpy_generator(sha256_seed("jacobian-lanczos", seed, index)).standard_normal(dim)
            try:
                values = eigsh(operator, k=k, which="LA", tol=tol, ncv=ncv, v0=start, return_eigenvectors=False)
            except ArpackNoConvergence as exc:
                raise GensynthError(
                    f"Lanczos for probe {index}: {len(exc.eigenvalues)} of {k} eigenvalues converged to tol={tol}; raise tol or ncv, or use method='exact'"
                ) from None
            spectra[index] = np.sort(values)[::-1]
            if products is not None:
                products.append(operator.calls)
    return spectra


def gram_operator(unet: torch.nn.Module, probe: torch.Tensor, timestep: torch.Tensor, label: torch.Tensor) -> LinearOperator:
    """``v -> J^T J v`` for one probe (C, H, W), as a float64 LinearOperator on flat vectors.

    Call inside :func:`jacobian_ready` (it needs attention that is differentiable twice). Its
    ``calls`` attribute counts the products applied so far.
    """
    shape, dim = probe.shape, probe.numel()
    # 1. one forward pass; vjp_fn: u -> (J^T u,)
    _, vjp_fn = vjp(denoiser(unet, timestep, label), probe)
    # 2. vjp_fn is linear in u, so its vector-Jacobian product is v -> J v; the cotangent
    #    point (zeros) does not matter
    _, jvp_fn = vjp(vjp_fn, torch.zeros_like(probe))

    def matvec(vector: np.ndarray) -> np.ndarray:
        operator.calls += 1
        v = torch.as_tensor(np.ravel(vector), dtype=probe.dtype).to(probe.device).reshape(shape)  # (C, H, W)
        (jv,) = jvp_fn((v,))  # J v: (C, H, W)
        (jtjv,) = vjp_fn(jv)  # J^T J v: (C, H, W)
        return jtjv.reshape(-1).double().cpu().numpy()

    operator = LinearOperator((dim, dim), matvec=matvec, rmatvec=matvec, dtype=np.float64)
    operator.calls = 0
    return operator


def jacobian_spectrum(
    unet: torch.nn.Module,
    probes: torch.Tensor,
    timesteps: torch.Tensor,
    labels: torch.Tensor,
    method: Method = "auto",
    k: int = 50,
    **options,
) -> np.ndarray:
    """Eigenvalues of ``J^T J`` per probe, descending: (P, D) for ``exact``, (P, k) for ``lanczos``.

    ``probes`` (P, C, H, W) are noised inputs ``x_t`` on the model's device, ``timesteps`` and
    ``labels`` (P,) their timesteps and condition tokens. ``auto`` is ``exact`` when
    ``D = C H W <= EXACT_MAX_DIM``, else ``lanczos``. ``options`` go to the method
    (:func:`exact_spectrum`: ``rows_per_pass``; :func:`lanczos_spectrum`: ``tol``, ``ncv``,
    ``seed``; both: ``show_progress``).
    """
    if method not in JACOBIAN_METHODS:
        raise GensynthError(f"Jacobian spectrum method {method!r}: expected one of {', '.join(JACOBIAN_METHODS)}")
    dim = math.prod(torch.as_tensor(probes).shape[1:])
    if method == "exact" or (method == "auto" and dim <= EXACT_MAX_DIM):
        return exact_spectrum(unet, probes, timesteps, labels, **options)
    return lanczos_spectrum(unet, probes, timesteps, labels, k=k, **options)


STAT_NAMES = ("trace", "top", "participation_ratio", "effective_rank", "spectral_entropy")  # of spectrum_stats


def spectrum_stats(eigenvalues: np.ndarray) -> dict[str, float]:
    """Summary statistics of one spectrum ``lambda_1 >= ... >= lambda_K >= 0`` (K,).

    With ``p_i = lambda_i / sum_j lambda_j``:

    - ``trace = sum_i lambda_i`` (``= ||J||_F^2`` when all ``D`` eigenvalues are given;
      of a top-k spectrum, the part in its top k);
    - ``top = lambda_1 = ||J||_2^2``;
    - ``participation_ratio = (sum_i lambda_i)^2 / sum_i lambda_i^2``, in [1, K]: how many
      directions share the energy (Gao et al. 2017);
    - ``spectral_entropy = -sum_i p_i ln p_i`` (nats, terms with ``p_i = 0`` count 0);
    - ``effective_rank = exp(spectral_entropy)``, in [1, K] (Roy & Vetterli 2007).

    Rounding can leave tiny negative eigenvalues; they count as 0. An all-zero spectrum has
    trace, top, participation ratio, entropy and effective rank 0 (a rank-0 matrix).
    """
    values = np.asarray(eigenvalues, dtype=np.float64)
    if values.ndim != 1 or values.size == 0:
        raise GensynthError(f"spectrum_stats: expected a non-empty 1-D array of eigenvalues, got shape {values.shape}")
    if not np.isfinite(values).all():
        raise GensynthError(f"spectrum_stats: {int((~np.isfinite(values)).sum())} non-finite eigenvalues")
    values = np.clip(values, 0.0, None)
    trace = float(values.sum())
    if trace == 0.0:
        return {"trace": 0.0, "top": 0.0, "participation_ratio": 0.0, "effective_rank": 0.0, "spectral_entropy": 0.0}
    p = values[values > 0] / trace
    entropy = float(-(p * np.log(p)).sum())
    return {
        "trace": trace,
        "top": float(values.max()),
        "participation_ratio": float(trace**2 / (values**2).sum()),
        "effective_rank": float(np.exp(entropy)),
        "spectral_entropy": entropy,
    }


def _rows_per_pass(rows_per_pass: int | None, dim: int) -> int:
    if rows_per_pass is None:
        return max(1, ROWS_PER_PASS_ELEMENTS // dim)
    if rows_per_pass < 1:
        raise GensynthError(f"rows_per_pass = {rows_per_pass}: expected an integer >= 1")
    return rows_per_pass


def _check_probes(unet, probes, timesteps, labels) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Probes (P, C, H, W) float and timesteps, labels (P,) integer, on the model's device."""
    device = next(unet.parameters()).device
    probes, timesteps, labels = (torch.as_tensor(a) for a in (probes, timesteps, labels))
    config = unet.config
    size = config.sample_size if isinstance(config.sample_size, (tuple, list)) else (config.sample_size,) * 2
    expected = (config.in_channels, *size)
    if probes.ndim != 4 or tuple(probes.shape[1:]) != expected or probes.shape[0] < 1:
        raise GensynthError(f"Jacobian probes: shape {tuple(probes.shape)}; expected (P, {', '.join(map(str, expected))}) for this UNet, P >= 1")
    if not probes.is_floating_point() or not torch.isfinite(probes).all():
        raise GensynthError(f"Jacobian probes: expected finite floating-point values, got dtype {probes.dtype}")
    for name, values in (("timesteps", timesteps), ("labels", labels)):
        if tuple(values.shape) != (probes.shape[0],) or values.is_floating_point() or values.is_complex():
            raise GensynthError(f"Jacobian {name}: shape {tuple(values.shape)}, dtype {values.dtype}; expected ({probes.shape[0]},) integers, one per probe")
    if timesteps.min() < 0:
        raise GensynthError(f"Jacobian timesteps: minimum {int(timesteps.min())}; expected >= 0")
    num_tokens = config.num_class_embeds
    if num_tokens is not None and (labels.min() < 0 or labels.max() >= num_tokens):
        raise GensynthError(f"Jacobian labels: range [{int(labels.min())}, {int(labels.max())}]; expected tokens in [0, {num_tokens - 1}]")
    return probes.to(device, torch.float32), timesteps.to(device, torch.long), labels.to(device, torch.long)
