"""Training of the replica model: the shared conditional UNet on (image, mask) slices.

The run is :func:`gensynth.training.train_epochs` with a resume file beside the checkpoint it will become
(model, EMA, optimizer, generator, history and the best epoch's weights, saved every few minutes): a killed
job's rerun with the same data and settings continues from it to the same weights; different data or
settings start afresh. ``scripts/train_replica_model.py`` removes it once the model is exported.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from ..diffusion import (
    DiffusionTrainConfig,
    UNetConfig,
    build_model,
    diffusion_trainer,
    make_train_scheduler,
    save_model_checkpoint,
    scheduler_config,
)
from ..errors import GensynthError
from ..io import atomic_open, load_yaml, save_json
from ..seeding import numpy_generator, sha256_seed
from ..training import BestKeepingResumeFile, run_fingerprint, train_epochs
from .data import DOMAIN_MAPPING, SliceDataset
from .settings import ReplicaTrainSettings

log = logging.getLogger(__name__)


def train_scheduler(settings: ReplicaTrainSettings):
    return make_train_scheduler(settings.num_train_timesteps, settings.beta_schedule, prediction_type=settings.prediction_type)


def trainer_config(settings: ReplicaTrainSettings) -> DiffusionTrainConfig:
    return DiffusionTrainConfig(
        lr=settings.lr, batch_size=settings.batch_size, cond_dropout=settings.cond_dropout, ema_decay=settings.ema_decay, seed=settings.seed
    )


def split_validation(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Random slice indices for training and validation (at least one of each)."""
    if n < 2:
        raise GensynthError(f"training data has {n} slice(s): need at least 2 (one for validation)")
    order = numpy_generator(sha256_seed("replicas-validation", seed)).permutation(n)
    n_val = min(max(1, round(n * fraction)), n - 1)
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def fingerprint(data_sha256: str, z_bins: int, unet_cfg: UNetConfig, settings: ReplicaTrainSettings) -> dict[str, Any]:
    """What a resumed run must share with the interrupted one (everything but the epoch count)."""
    settings_dict = {k: v for k, v in dataclasses.asdict(settings).items() if k != "epochs"}
    return {"data": data_sha256, "z_bins": z_bins, "unet": unet_cfg.to_dict(), "train": settings_dict}


@dataclass
class TrainedReplicaModel:
    unet: torch.nn.Module  # holds the best epoch's raw weights
    ema: dict[str, torch.Tensor]  # the best epoch's EMA weights
    history: dict[str, Any]  # epochs (epoch, train_loss, val_loss, seconds, attempt), best_epoch, best_val_loss, n_train, n_val


def train_replica_model(
    dataset: SliceDataset,
    data_sha256: str,
    z_bins: int,
    unet_cfg: UNetConfig,
    settings: ReplicaTrainSettings,
    device: torch.device,
    resume_path: Path,
    resume_every_s: float = 600.0,
) -> TrainedReplicaModel:
    """Train (or resume from ``resume_path``) to ``settings.epochs``; the model of the lowest validation loss."""
    train_index, val_index = split_validation(len(dataset), settings.val_fraction, settings.seed)
    x = torch.from_numpy(dataset.stacked())  # (N, 2, H, H)
    tokens = torch.from_numpy(dataset.condition_tokens(z_bins))  # (N,)
    torch.manual_seed(settings.seed)
    unet = build_model(unet_cfg).to(device)
    trainer = diffusion_trainer(unet, train_scheduler(settings), trainer_config(settings))
    resume = BestKeepingResumeFile(resume_path, run_fingerprint(**fingerprint(data_sha256, z_bins, unet_cfg, settings)), every_s=resume_every_s)

    def epoch(number: int) -> dict[str, Any]:
        train_loss = trainer.train_epoch(x[train_index], tokens[train_index])
        val_loss = trainer.evaluate(x[val_index], tokens[val_index], seed=settings.seed)
        if resume.best is None or val_loss < resume.best["val_loss"]:
            weights = {k: v.detach().clone() for k, v in unet.state_dict().items()}
            resume.best = {"epoch": number, "val_loss": val_loss, "weights": weights, "ema": trainer.ema_state_dict()}
        return {"train_loss": train_loss, "val_loss": val_loss}

    epochs = train_epochs(trainer, settings.epochs, epoch, resume=resume, desc="training the replica model")
    if resume.best is None:
        raise GensynthError("training ran no epoch (epochs must be at least 1)")
    unet.load_state_dict(resume.best["weights"])
    history = {
        "epochs": epochs,
        "best_epoch": resume.best["epoch"],
        "best_val_loss": resume.best["val_loss"],
        "n_train": len(train_index),
        "n_val": len(val_index),
    }
    return TrainedReplicaModel(unet, resume.best["ema"], history)


def export_model(
    trained: TrainedReplicaModel,
    out_checkpoint: Path,
    out_config: Path,
    z_bins: int,
    unet_cfg: UNetConfig,
    settings: ReplicaTrainSettings,
    data: dict[str, Any],
) -> None:
    """``best.ckpt`` (the best epoch's weights and EMA weights) and the ``config.yaml`` that describes it."""
    history = trained.history
    extra = {"z_bins": z_bins, "epoch": history["best_epoch"], "val_loss": history["best_val_loss"]}
    save_model_checkpoint(out_checkpoint, trained.unet, unet_cfg, train_scheduler(settings), extra=extra, ema_state=trained.ema)
    config = {
        "z_bins": z_bins,
        "image_size": unet_cfg.sample_size,
        "channels": ["image", "mask"],
        "condition_token": "zbin + lesion_present * z_bins",
        "null_token": unet_cfg.null_token,
        "domain_mapping": dict(DOMAIN_MAPPING),
        "unet": unet_cfg.to_dict(),
        "scheduler": scheduler_config(train_scheduler(settings)),
        "train": dataclasses.asdict(settings),
        "data": data,
        "best": {"epoch": history["best_epoch"], "val_loss": history["best_val_loss"]},
        "checkpoint": out_checkpoint.name,
    }
    with atomic_open(out_config, "w", encoding="utf-8") as handle:
        yaml.safe_dump(config, handle, sort_keys=False)


def load_model_config(path: str | Path) -> dict[str, Any]:
    """A training run's ``config.yaml``: z_bins and the UNet settings are required."""
    path = Path(path)
    config = load_yaml(path, "model config (the config.yaml written beside best.ckpt)")
    if not isinstance(config, dict) or not isinstance(config.get("z_bins"), int) or not isinstance(config.get("unet"), dict):
        raise GensynthError(f"{path}: expected a model config with an integer 'z_bins' and a 'unet' mapping")
    try:
        config["unet_config"] = UNetConfig.from_dict(config["unet"])
    except TypeError as exc:
        raise GensynthError(f"{path}: 'unet' does not describe a UNetConfig ({exc})") from None
    if config["unet_config"].num_classes != 2 * config["z_bins"]:
        raise GensynthError(f"{path}: unet num_classes = {config['unet_config'].num_classes}, expected 2 * z_bins = {2 * config['z_bins']}")
    return config


def save_history(path: Path, history: dict[str, Any], provenance: dict[str, Any]) -> None:
    save_json(path, {**history, "provenance": provenance})
