"""Training a diffusion model: the shared :class:`gensynth.training.Trainer` with DDPM's loss."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import DDPMScheduler

from ..training import TrainConfig, Trainer
from .schedule import DiffusionLoss


@dataclass
class DiffusionTrainConfig(TrainConfig):
    cond_dropout: float = 0.1  # probability of training on the null token


def diffusion_trainer(model: torch.nn.Module, scheduler: DDPMScheduler, config: DiffusionTrainConfig) -> Trainer:
    """A trainer on ``(x0, y)`` batches (``(x0,)`` for a model without classes); held-out data are
    scored without condition dropout."""
    return Trainer(model, DiffusionLoss(scheduler, config.cond_dropout), config, eval_loss=DiffusionLoss(scheduler, 0.0))
