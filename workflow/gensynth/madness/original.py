"""The group's own DDPM-MNIST checkpoints as gensynth ContextUnets that compute exactly the group's function.

A ``model_{g}_w{w}.pth`` file (layout: gensynth.madness.original_layout) loads with ``weights_only=True``,
is checked against the declared architecture and schedule, and its tensors are renamed into gensynth's
``ContextUnet``. The group's conventions, and how the loaded module keeps them:

- time enters as ``t / n_T`` for the integer step t in 1..n_T: the module takes the integer t with
  ``num_train_timesteps = n_T``;
- a kept class enters as MINUS its one-hot vector, a dropped one as zeros: the first Linear weight of both
  context embeddings is negated on loading (W(-e) = (-W)e exactly), and the null token is the zero vector;
- residual blocks divide by 1.414, not sqrt(2): ``residual_divisor = 1.414``;
- batch norm with its running statistics: the model is returned in eval mode;
- images in [0, 1] (``transforms.ToTensor()``), noised with the group's own buffers
  ``x_t = sqrtab[t] x0 + sqrtmab[t] eps`` (:func:`original_probes`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import GensynthError
from .context_unet import ContextUnet
from .data import RealData
from .original_layout import (
    CHANNELS,
    IMAGE_SIZE,
    NEGATED,
    NETWORK_PREFIX,
    SCHEDULE_BUFFERS,
    gensynth_name,
    layout_problem,
    schedule_problem,
)
from .original_samples import torch_load
from .probes import noised_probes

RESIDUAL_DIVISOR = 1.414  # the group's ResidualConvBlock: (x + conv(x)) / 1.414
PROBE_UNIT = 0  # the group's one chain per w is measured at unit 0's probe images


def original_schedule(n_T: int, betas: tuple[float, float]) -> dict[str, torch.Tensor]:
    """``sqrtab`` and ``sqrtmab`` (n_T + 1,) float32, computed as the group's code computes them."""
    beta = (betas[1] - betas[0]) * torch.arange(0, n_T + 1, dtype=torch.float32) / n_T + betas[0]
    alphabar = torch.cumsum(torch.log(1 - beta), dim=0).exp()
    return {"sqrtab": torch.sqrt(alphabar), "sqrtmab": torch.sqrt(1 - alphabar)}


def build_original_unet(n_feat: int, n_classes: int, n_T: int) -> ContextUnet:
    return ContextUnet(
        sample_size=IMAGE_SIZE,
        in_channels=CHANNELS,
        out_channels=CHANNELS,
        n_feat=n_feat,
        num_class_embeds=n_classes + 1,  # the last token is the group's dropped (all-zero) context
        num_train_timesteps=n_T,
        norm_num_groups=8,
        residual_divisor=RESIDUAL_DIVISOR,
    )


def load_original(path: str | Path, n_feat: int, n_classes: int, n_T: int, betas: tuple[float, float]) -> ContextUnet:
    """One of the group's checkpoints as a gensynth ContextUnet in eval mode, on the CPU; one error naming the file."""
    state = torch_load(path)
    if not isinstance(state, dict) or not all(isinstance(value, torch.Tensor) for value in state.values()):
        raise GensynthError(f"{path}: not a state dict of tensors: expected torch.save(ddpm.state_dict())")
    problem = layout_problem({name: tuple(value.shape) for name, value in state.items()}, n_feat, n_classes, n_T)
    if problem is None:
        problem = schedule_problem({name: state[name].double().tolist() for name in SCHEDULE_BUFFERS}, n_T, betas)
    if problem:
        raise GensynthError(f"{path}: {problem}")
    weights = {gensynth_name(name.removeprefix(NETWORK_PREFIX)): value for name, value in state.items() if name.startswith(NETWORK_PREFIX)}
    for name in NEGATED:
        weights[name] = -weights[name]
    model = build_original_unet(n_feat, n_classes, n_T)
    model.load_state_dict(weights, strict=True)
    return model.eval()


def original_probes(real: RealData, num_images: int, timesteps: list[int], n_T: int, betas: tuple[float, float], seed: int) -> dict[str, np.ndarray]:
    """P = num_images x len(timesteps) probes, image-major, as the group's models take them: unit 0's probe images
    in [0, 1] noised with the group's schedule, ``x_t = sqrtab[t] x0 + sqrtmab[t] eps``; one noise draw per probe."""
    if any(not 1 <= t <= n_T for t in timesteps):
        raise GensynthError(f"timesteps {list(timesteps)}: each must lie in 1..n_T = {n_T} (the group's steps)")
    if real.x_test.shape[1:] != (CHANNELS, IMAGE_SIZE, IMAGE_SIZE):
        raise GensynthError(f"real test images of shape {real.x_test.shape[1:]}: the group's models take ({CHANNELS}, {IMAGE_SIZE}, {IMAGE_SIZE})")
    buffers = original_schedule(n_T, betas)

    def in_the_groups_range(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x0 = (x0 + 1) / 2  # the real data's [-1, 1] back to the group's [0, 1]
        return x0, buffers["sqrtab"][t, None, None, None] * x0 + buffers["sqrtmab"][t, None, None, None] * noise

    return noised_probes(real, num_images, timesteps, seed, PROBE_UNIT, "original-probe-noise", in_the_groups_range)
