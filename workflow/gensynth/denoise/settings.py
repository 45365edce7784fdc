"""The denoise steps' settings, torch-free: scripts declare their flags from them before importing torch."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from ..errors import GensynthError

Target = Literal["noise2noise", "clean"]
TARGETS: tuple[str, ...] = get_args(Target)


@dataclass
class DenoiseTrainSettings:
    """The config's ``denoise.train`` section (and the seed of the module)."""

    target: Target = "noise2noise"
    epochs: int = 12  # at most; early stopping may end sooner
    batch_size: int = 32
    lr: float = 5e-3  # AdamW learning rate of the first epoch
    final_lr_fraction: float = 1.0  # the rate decays along a half cosine to lr * final_lr_fraction at the last epoch
    ema_decay: float = 0.99  # EMA of the weights (diffusers' warm-up ramps up to it); the EMA weights are saved
    patience: int = 3  # epochs without a lower validation loss before stopping
    grad_clip: float = 1.0
    seed: int = 0  # initial weights, shuffling

    def __post_init__(self):
        if self.target not in TARGETS:
            raise GensynthError(f"target {self.target!r}: expected one of {', '.join(TARGETS)}")

    def epoch_lr(self, epoch: int) -> float:
        """The learning rate of epoch 1 .. epochs (a function of the epoch alone, so a resumed run follows it too)."""
        progress = (epoch - 1) / max(self.epochs - 1, 1)
        return self.lr * (self.final_lr_fraction + (1 - self.final_lr_fraction) * 0.5 * (1 + math.cos(math.pi * progress)))
