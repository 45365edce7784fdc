"""The noise schedule and the training loss (diffusers' schedulers).

Notation (Ho et al. 2020, DDPM; Salimans & Ho 2022, v-prediction; Ho & Salimans 2022, classifier-free guidance):

====================  ==========================================================
``x0``                clean sample, (B, *sample_shape), values in [-1, 1]
``t``                 training timestep in [0, T)
``eps``               Gaussian noise; the model predicts it: ``eps_theta(x_t, t, y)``
``y``                 condition token in [0, K); token ``K`` is the null token
====================  ==========================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, DDPMScheduler

from ..errors import GensynthError
from .models import null_label
from .settings import SAMPLERS, SamplerKind


def make_train_scheduler(
    num_train_timesteps: int,
    beta_schedule: str = "linear",
    beta_start: float = 1e-4,
    beta_end: float = 0.02,
    prediction_type: Literal["epsilon", "v_prediction"] = "epsilon",
) -> DDPMScheduler:
    """``prediction_type`` is the model's target; v (Salimans & Ho 2022) learns the high-noise end much faster."""
    return DDPMScheduler(
        num_train_timesteps=num_train_timesteps,
        beta_schedule=beta_schedule,
        beta_start=beta_start,
        beta_end=beta_end,
        prediction_type=prediction_type,
        clip_sample=True,
    )


def scheduler_config(scheduler) -> dict[str, Any]:
    """The scheduler's settings as a plain dict (diffusers' private keys dropped)."""
    return {key: value for key, value in scheduler.config.items() if not key.startswith("_")}


def make_sampler(kind: SamplerKind, train_config: dict[str, Any]):
    """A DDIM or DDPM sampling scheduler on the training noise schedule."""
    if kind == "ddim":
        return DDIMScheduler.from_config(train_config)
    if kind == "ddpm":
        return DDPMScheduler.from_config(train_config)
    raise GensynthError(f"sampler {kind!r}: expected one of {', '.join(SAMPLERS)}")


@dataclass
class DiffusionLoss:
    """DDPM's simple loss, ``|| eps - eps_theta(x_t, t, y) ||^2`` (Ho et al. 2020, eq. 14), on a batch ``(x0, y)``.

    With a ``v_prediction`` scheduler the target is ``v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x0``
    (Salimans & Ho 2022, sec. 4) instead of ``eps``. A model without classes takes batches ``(x0,)``.
    Randomness comes from ``generator`` (on the CPU), so training is reproducible on any device.
    """

    scheduler: DDPMScheduler
    cond_dropout: float = 0.0  # probability of replacing the condition by the null token

    def __call__(self, model: torch.nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
        x0 = batch[0]
        size, device = x0.shape[0], x0.device
        # 1. draw t ~ U{0, T-1} and eps ~ N(0, I)
        t = torch.randint(0, self.scheduler.config.num_train_timesteps, (size,), generator=generator).to(device)  # (B,)
        noise = torch.randn(x0.shape, generator=generator).to(device)  # (B, *sample_shape)
        null = null_label(model)
        y = None
        if null is not None:
            # 2. replace the condition by the null token with probability cond_dropout (classifier-free guidance)
            drop = (torch.rand(size, generator=generator) < self.cond_dropout).to(device)  # (B,)
            labels = batch[1]
            y = torch.where(drop, torch.full_like(labels, null), labels)  # (B,)
        # 3. x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps
        x_t = self.scheduler.add_noise(x0, noise, t)
        prediction = model(x_t, t, class_labels=y).sample  # (B, *sample_shape)
        target = self.scheduler.get_velocity(x0, noise, t) if self.scheduler.config.prediction_type == "v_prediction" else noise
        return F.mse_loss(prediction.float(), target)
