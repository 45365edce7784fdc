"""MambaUV: a dose-conditioned Mamba denoiser over the wavelength axis of UV spectra.

Mamba blocks (Gu & Dao 2023, arXiv:2312.00752) as mambapy's mamba.py builds them (same parameters, same
names, so weights copy across and the causal stack equals mambapy's ``Mamba`` to 1e-6), with FiLM
conditioning (Perez et al. 2018, arXiv:1709.07871) from the normalised dose features:

    MambaUV(spectra, dose):
        u = (spectra - mean) / std                            per spectrum, over wavelengths: no batch statistics
        x = embed(u)                                          (B, L) -> (B, L, D)
        for each layer i:
            ResidualBlock_i(x) = x + mixer(film_i(norm(x)))   film_i(h) = h * (1 + gamma_i(dose)) + beta_i(dose)
                                 (+ flip(mixer_reverse(flip(film_i(norm(x))))) when bidirectional)
        return spectra + std * head(norm_f(x))                residual output: input + correction

    MambaBlock(h):                                            (B, L, D) -> (B, L, D)
        x, z = in_proj(h)                                     two (B, L, ED) branches
        x = silu(causal depthwise conv1d(x))                  a short filter over wavelengths
        Δ, B, C = x_proj(x); Δ = softplus(dt_proj(Δ))         input-dependent step sizes and projections
        y = selective_scan(x, Δ, A, B, C, D)                  see scan.py
        return out_proj(y * silu(z))                          gating

Bidirectional or causal: a causal scan sees only shorter wavelengths, but a denoiser at wavelength l
benefits from both sides of it, so the pipeline's default is ``bidirectional=True``: each block adds a
second mixer run on the reversed sequence (twice the cost). ``bidirectional=False`` is exactly mambapy's
causal block, which is what the equality tests and the benchmark compare.

At initialisation the head and the FiLM generator are zero: the model returns its input unchanged, and
the dose acts only once training moves them (the usual start for residual and FiLM-conditioned nets).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GensynthError
from .scan import SCAN_BACKENDS, ScanBackend, causal_conv_silu, rms_norm, selective_scan

# Per-spectrum scale floor: a flat spectrum must not divide by zero.
SCALE_FLOOR = 1e-6


@dataclass
class MambaUVConfig:
    dose_dim: int  # number of dose features (the FiLM input)
    d_model: int = 64  # D
    n_layers: int = 4
    d_state: int = 16  # N
    expand: int = 2  # E: the blocks' inner width is ED = E * D
    d_conv: int = 4  # width of the causal depthwise convolution
    dt_rank: int | None = None  # R, rank of Δ's projection; None: ceil(D / 16)
    bidirectional: bool = True  # a forward and a reversed scan per block (False: mambapy's causal block)
    rms_norm_eps: float = 1e-5
    dt_min: float = 0.001  # range of Δ at initialisation (log-uniform)
    dt_max: float = 0.1
    dt_init_floor: float = 1e-4

    def __post_init__(self):
        for name in ("d_model", "n_layers", "d_state", "expand", "d_conv"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise GensynthError(f"MambaUVConfig.{name}: expected a positive integer, got {getattr(self, name)!r}")
        if not isinstance(self.dose_dim, int) or self.dose_dim < 0:
            raise GensynthError(f"MambaUVConfig.dose_dim: expected an integer >= 0, got {self.dose_dim!r}")
        if self.dt_rank is not None and (not isinstance(self.dt_rank, int) or self.dt_rank < 1):
            raise GensynthError(f"MambaUVConfig.dt_rank: expected a positive integer or None, got {self.dt_rank!r}")

    @property
    def d_inner(self) -> int:  # ED
        return self.expand * self.d_model

    @property
    def resolved_dt_rank(self) -> int:  # R
        return self.dt_rank if self.dt_rank is not None else math.ceil(self.d_model / 16)

    def to_dict(self) -> dict[str, Any]:
        """Plain values only: checkpoints embed it and load with ``weights_only=True``."""
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> MambaUVConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise GensynthError(f"MambaUVConfig: unknown key(s) {', '.join(unknown)}; expected some of {', '.join(sorted(known))}")
        return cls(**values)


def set_scan_backend(model: nn.Module, backend: ScanBackend) -> nn.Module:
    """Pick the kernels (scan, conv, norms; see scan.py) of every block and norm in ``model``; returns it.

    ``auto`` (the default): mamba-ssm's scan on CUDA when installed, the fused numba kernels on the CPU,
    the reference otherwise; ``fused``, ``reference`` and ``cuda`` force one."""
    if backend not in SCAN_BACKENDS:
        raise ValueError(f"scan backend {backend!r}: expected one of {', '.join(SCAN_BACKENDS)}")
    for module in model.modules():
        if isinstance(module, (MambaBlock, RMSNorm)):
            module.scan_backend = backend
    return model


class MambaUV(nn.Module):
    """spectra (B, L) and normalised dose features (B, dose_dim) -> denoised spectra (B, L).

    Raw spectra go in (the per-spectrum standardisation is inside); ``set_scan_backend`` picks the kernels."""

    def __init__(self, config: MambaUVConfig):
        super().__init__()
        self.config = config
        d_model = config.d_model
        self.embed = nn.Linear(1, d_model)
        self.dose_embed = nn.Sequential(nn.Linear(config.dose_dim, d_model), nn.SiLU())
        self.film = nn.Linear(d_model, config.n_layers * 2 * d_model)  # (gamma, beta) of every block
        self.backbone = MambaStack(config)
        self.norm_f = RMSNorm(d_model, config.rms_norm_eps)
        self.head = nn.Linear(d_model, 1)
        for layer in (self.film, self.head):  # identity model, no dose effect, at initialisation
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def set_scan_backend(self, backend: ScanBackend) -> MambaUV:
        return set_scan_backend(self, backend)

    def forward(self, spectra: torch.Tensor, dose: torch.Tensor) -> torch.Tensor:
        if spectra.dim() != 2 or dose.dim() != 2 or dose.shape != (spectra.shape[0], self.config.dose_dim):
            expected = f"spectra (B, L) and dose (B, {self.config.dose_dim})"
            raise ValueError(f"MambaUV: expected {expected}, got {tuple(spectra.shape)} and {tuple(dose.shape)}")
        mean = spectra.mean(dim=1, keepdim=True)  # (B, 1)
        scale = spectra.std(dim=1, keepdim=True, correction=0).clamp_min(SCALE_FLOOR)  # (B, 1)
        x = self.embed(((spectra - mean) / scale).unsqueeze(-1))  # (B, L, D)
        film = self.film(self.dose_embed(dose)).view(-1, self.config.n_layers, 2, self.config.d_model)  # (B, layers, 2, D)
        x = self.backbone(x, film)  # (B, L, D)
        correction = self.head(self.norm_f(x)).squeeze(-1)  # (B, L)
        return spectra + scale * correction


class MambaStack(nn.Module):
    """The stack of residual blocks; with ``bidirectional=False`` mambapy's ``Mamba`` (same state_dict keys)."""

    def __init__(self, config: MambaUVConfig):
        super().__init__()
        self.config = config
        self.layers = nn.ModuleList([ResidualBlock(config) for _ in range(config.n_layers)])

    def set_scan_backend(self, backend: ScanBackend) -> MambaStack:
        return set_scan_backend(self, backend)

    def forward(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        # x : (B, L, D), film : (B, n_layers, 2, D) or None
        for i, layer in enumerate(self.layers):
            x = layer(x, None if film is None else film[:, i])
        return x


class ResidualBlock(nn.Module):
    def __init__(self, config: MambaUVConfig):
        super().__init__()
        self.mixer = MambaBlock(config)
        self.mixer_reverse = MambaBlock(config) if config.bidirectional else None
        self.norm = RMSNorm(config.d_model, config.rms_norm_eps)

    def forward(self, x: torch.Tensor, film: torch.Tensor | None = None) -> torch.Tensor:
        # x : (B, L, D), film : (B, 2, D) holding (gamma, beta) or None
        h = self.norm(x)  # (B, L, D)
        if film is not None:
            h = h * (1 + film[:, None, 0]) + film[:, None, 1]  # (B, L, D)
        out = self.mixer(h)  # (B, L, D)
        if self.mixer_reverse is not None:
            out = out + self.mixer_reverse(h.flip(1)).flip(1)  # (B, L, D)
        return x + out


class MambaBlock(nn.Module):
    """mambapy's MambaBlock (its parameters and their initialisation), with the kernels from scan.py."""

    def __init__(self, config: MambaUVConfig):
        super().__init__()
        self.config = config
        self.scan_backend: ScanBackend = "auto"
        d_inner, dt_rank, d_state = config.d_inner, config.resolved_dt_rank, config.d_state
        self.in_proj = nn.Linear(config.d_model, 2 * d_inner, bias=False)
        self.conv1d = nn.Conv1d(d_inner, d_inner, kernel_size=config.d_conv, groups=d_inner, padding=config.d_conv - 1)
        self.x_proj = nn.Linear(d_inner, dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(dt_rank, d_inner, bias=True)
        self.out_proj = nn.Linear(d_inner, config.d_model, bias=False)

        # Δ's initialisation (the paper's section 3.6 and mamba_simple.py): weights uniform in
        # ±R^-1/2, bias = softplus^-1 of Δ log-uniform in [dt_min, dt_max]
        dt_init_std = dt_rank**-0.5
        nn.init.uniform_(self.dt_proj.weight, -dt_init_std, dt_init_std)
        dt = torch.exp(torch.rand(d_inner) * (math.log(config.dt_max) - math.log(config.dt_min)) + math.log(config.dt_min))
        dt = dt.clamp(min=config.dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        # S4D-real initialisation, A = -(1, 2, ..., N) per channel, stored as log(-A) so that A stays negative
        self.A_log = nn.Parameter(torch.log(torch.arange(1, d_state + 1, dtype=torch.float32).repeat(d_inner, 1)))  # (ED, N)
        self.D = nn.Parameter(torch.ones(d_inner))  # (ED,)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # h : (B, L, D)
        # in_proj's two halves as two products: contiguous x and z for the kernels (mambapy chunks one)
        x_weight, z_weight = self.in_proj.weight.chunk(2, dim=0)  # (ED, D) each
        x, z = F.linear(h, x_weight), F.linear(h, z_weight)  # (B, L, ED), (B, L, ED)
        x = causal_conv_silu(x, self.conv1d.weight[:, 0], self.conv1d.bias, backend=self.scan_backend)  # (B, L, ED)
        y = self.ssm(x)  # (B, L, ED)
        return self.out_proj(y * F.silu(z))  # (B, L, D)

    def ssm(self, x: torch.Tensor) -> torch.Tensor:
        # x : (B, L, ED)
        A = -torch.exp(self.A_log.float())  # (ED, N)
        # x_proj's rows for Δ, B and C as three products: contiguous B and C for the kernels, no copies
        rows = [self.config.resolved_dt_rank, self.config.d_state, self.config.d_state]
        delta_weight, B_weight, C_weight = torch.split(self.x_proj.weight, rows)  # (R, ED), (N, ED), (N, ED)
        delta, B, C = F.linear(x, delta_weight), F.linear(x, B_weight), F.linear(x, C_weight)  # (B, L, R), (B, L, N), (B, L, N)
        delta = F.softplus(self.dt_proj(delta))  # (B, L, ED)
        return selective_scan(x, delta, A, B, C, self.D.float(), backend=self.scan_backend)  # (B, L, ED)


class RMSNorm(nn.Module):
    def __init__(self, d_model: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.scan_backend: ScanBackend = "auto"  # its CPU kernel sits with the scan's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return rms_norm(x, self.weight, self.eps, backend=self.scan_backend)  # x * rsqrt(mean(x^2) + eps) * weight
