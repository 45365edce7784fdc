"""The genaug steps' settings, torch-free: scripts declare their flags from them before importing torch."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PipelineSettings:
    """The config's ``genaug.pipeline`` section."""

    block_out_channels: tuple[int, ...] = (16, 32)  # one resolution level each (multiples of 8)
    layers_per_block: int = 1
    epochs: int = 40  # passes over the folder's training images
    batch_size: int = 16
    lr: float = 3e-3  # AdamW learning rate
    ema_decay: float = 0.99  # the saved weights are the EMA's
    num_train_timesteps: int = 1000  # T of DDPM
    prediction_type: str = "v_prediction"  # the UNet's target; v learns faster on a small budget
    seed: int = 0

    def fingerprint_settings(self) -> dict[str, Any]:
        """What a resumed run must share with the interrupted one: all but the epoch count (raising it extends a run)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "epochs"}


@dataclass(frozen=True)
class ClassifierSettings:
    """The config's ``genaug.classifier`` section (but its list of seeds)."""

    width: int = 16  # features per branch
    epochs: int = 40
    batch_size: int = 16
    lr: float = 3e-3  # AdamW learning rate
    ema_decay: float = 0.99  # predictions use the EMA weights
