"""Checkpoints of diffusion models: settings, weights, EMA weights and the trainer's state, as plain values.

They load with ``torch.load(weights_only=True)``: nothing in them is unpickled code.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import DDPMScheduler

from ..errors import GensynthError
from ..io import load_checkpoint, save_checkpoint
from ..training import Trainer
from .models import build_model, model_config_from_dict
from .schedule import scheduler_config

CHECKPOINT_FORMAT = "gensynth.diffusion/1"


def save_model_checkpoint(
    path: str | Path,
    model: torch.nn.Module,
    cfg,
    train_scheduler: DDPMScheduler,
    trainer: Trainer | None = None,
    extra: dict[str, Any] | None = None,
    ema_state: dict[str, torch.Tensor] | None = None,
) -> None:
    """Model weights, EMA weights (the trainer's, or ``ema_state``) and the trainer's state (to resume), atomically."""
    state = {
        "format": CHECKPOINT_FORMAT,
        "unet_config": cfg.to_dict(),  # the key's name predates other architectures; kept so old files load
        "scheduler_config": scheduler_config(train_scheduler),
        "model": model.state_dict(),
        "extra": dict(extra or {}),
    }
    if trainer is not None:
        state["ema_model"] = trainer.ema_state_dict()
        state["trainer"] = trainer.state_dict()
    if ema_state is not None:
        state["ema_model"] = ema_state
    save_checkpoint(path, state)


@dataclass
class LoadedModel:
    model: torch.nn.Module
    cfg: Any  # the architecture's settings object (UNetConfig for the image UNets)
    scheduler_config: dict[str, Any]
    ema_loaded: bool
    state: dict[str, Any]  # the whole checkpoint, for the trainer's state and extras


def load_model_checkpoint(
    path: str | Path,
    expected_cfg=None,
    use_ema: bool = True,
    device: torch.device | str = "cpu",
) -> LoadedModel:
    """Load a checkpoint written by :func:`save_model_checkpoint`.

    A checkpoint of another format, or one whose settings differ from ``expected_cfg``, is one
    clear error that names the differing settings.
    """
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise GensynthError(f"{path}: not a gensynth diffusion checkpoint (format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        cfg = model_config_from_dict(state["unet_config"])
    except TypeError as exc:
        raise GensynthError(f"{path}: its model settings do not match this version's ({exc})") from None
    except GensynthError as exc:
        raise GensynthError(f"{path}: {exc}") from None
    if expected_cfg is not None and cfg != expected_cfg:
        diffs = [
            f"{name}: checkpoint {getattr(cfg, name)!r}, config {getattr(expected_cfg, name)!r}"
            for name in (f.name for f in dataclasses.fields(cfg))
            if getattr(cfg, name) != getattr(expected_cfg, name, None)
        ]
        raise GensynthError(f"{path}: checkpoint does not match the config ({'; '.join(diffs)})")
    model = build_model(cfg)
    ema_loaded = use_ema and "ema_model" in state
    try:
        model.load_state_dict(state["ema_model"] if ema_loaded else state["model"])
    except (RuntimeError, KeyError) as exc:
        raise GensynthError(f"{path}: weights do not fit the model its settings describe ({str(exc).splitlines()[0]})") from None
    return LoadedModel(model.to(device), cfg, state["scheduler_config"], ema_loaded, state)
