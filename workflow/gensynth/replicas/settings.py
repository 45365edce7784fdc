"""The replicas steps' settings, torch-free: scripts declare their flags from them before importing torch."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ReplicaTrainSettings:
    """The config's ``replicas.train`` section."""

    epochs: int = 25  # passes over the training slices
    batch_size: int = 16
    lr: float = 4e-3  # AdamW learning rate
    cond_dropout: float = 0.1  # share of steps on the null token (classifier-free guidance)
    ema_decay: float = 0.999  # EMA decay (diffusers' warm-up ramps up to it)
    val_fraction: float = 0.1  # share of the training slices held out for the validation loss
    num_train_timesteps: int = 1000  # DDPM noise levels
    beta_schedule: str = "linear"  # DDPM beta schedule (diffusers' name)
    prediction_type: str = "v_prediction"  # the UNet's target: v_prediction or epsilon
    seed: int = 0  # initial weights, shuffling, noise and the validation split
