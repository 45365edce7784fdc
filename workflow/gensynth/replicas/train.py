"""Training of the replica model: the shared conditional UNet on (image, mask) slices.

The run keeps its state in a resume directory beside the outputs: ``last.ckpt`` (model,
EMA, optimizer, generator, history after the last finished epoch) and ``best.ckpt`` (the
lowest validation loss so far). A rerun with the same data and settings continues from
``last.ckpt`` (a killed job); different data or settings start afresh. Raising ``epochs`` extends a
run whose state is still there: ``scripts/train_replica_model.py`` removes it once the model is exported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
import time
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
    load_model_checkpoint,
    make_train_scheduler,
    save_model_checkpoint,
    scheduler_config,
)
from ..errors import GensynthError
from ..io import atomic_open, atomic_path, load_checkpoint, load_yaml, save_json
from ..seeding import numpy_generator, sha256_seed
from .data import DOMAIN_MAPPING, SliceDataset
from .settings import ReplicaTrainSettings

log = logging.getLogger(__name__)
LAST, BEST = "last.ckpt", "best.ckpt"  # the resume directory's files
RESUME_FILES = (LAST, BEST)


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


def fingerprint(data_sha256: str, z_bins: int, unet_cfg: UNetConfig, settings: ReplicaTrainSettings) -> str:
    """What a resumed run must share with the interrupted one (everything but the epoch count)."""
    settings_dict = {k: v for k, v in dataclasses.asdict(settings).items() if k != "epochs"}
    blob = json.dumps({"data": data_sha256, "z_bins": z_bins, "unet": unet_cfg.to_dict(), "train": settings_dict}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()


def load_resume_state(resume_dir: Path, expected: str, epochs: int):
    """The interrupted run's last checkpoint if it belongs to this run, else None (and why, in the log)."""
    last = resume_dir / LAST
    if not last.exists() or not (resume_dir / BEST).exists():
        return None
    try:
        state = load_checkpoint(last)
    except GensynthError as exc:
        log.warning("not resuming: %s", exc)
        return None
    extra = state.get("extra", {})
    if extra.get("fingerprint") != expected:
        log.info("not resuming from %s: it was trained on other data or settings", last)
        return None
    if extra.get("epoch", 0) > epochs:
        log.info("not resuming from %s: it has %d epochs, more than the %d asked for", last, extra["epoch"], epochs)
        return None
    return load_model_checkpoint(last, use_ema=False)


def train_replica_model(
    dataset: SliceDataset,
    data_sha256: str,
    z_bins: int,
    unet_cfg: UNetConfig,
    settings: ReplicaTrainSettings,
    device: torch.device,
    resume_dir: Path,
) -> dict[str, Any]:
    """Train (or resume) to ``settings.epochs``; returns the history. Best and last checkpoints go to ``resume_dir``."""
    resume_dir.mkdir(parents=True, exist_ok=True)
    train_index, val_index = split_validation(len(dataset), settings.val_fraction, settings.seed)
    x = torch.from_numpy(dataset.stacked())  # (N, 2, H, H)
    tokens = torch.from_numpy(dataset.condition_tokens(z_bins))  # (N,)
    run_id = fingerprint(data_sha256, z_bins, unet_cfg, settings)
    scheduler = train_scheduler(settings)
    resumed = load_resume_state(resume_dir, run_id, settings.epochs)
    if resumed is None:
        torch.manual_seed(settings.seed)
        unet = build_model(unet_cfg).to(device)
        trainer = diffusion_trainer(unet, scheduler, trainer_config(settings))
        history = {"epochs": [], "best_epoch": None, "best_val_loss": None, "n_train": len(train_index), "n_val": len(val_index)}
    else:
        unet = resumed.model.to(device)
        trainer = diffusion_trainer(unet, scheduler, trainer_config(settings))
        trainer.load_state_dict(resumed.state["trainer"])
        history = resumed.state["extra"]["history"]
        log.info("resuming after epoch %d from %s", len(history["epochs"]), resume_dir / LAST)
    extra = {"fingerprint": run_id, "z_bins": z_bins}
    for epoch in range(len(history["epochs"]) + 1, settings.epochs + 1):
        started = time.perf_counter()
        train_loss = trainer.train_epoch(x[train_index], tokens[train_index])
        val_loss = trainer.evaluate(x[val_index], tokens[val_index], seed=settings.seed)
        history["epochs"].append({"epoch": epoch, "train_loss": train_loss, "val_loss": val_loss, "seconds": time.perf_counter() - started})
        log.info("epoch %d/%d: train loss %.5f, validation loss (EMA) %.5f", epoch, settings.epochs, train_loss, val_loss)
        if history["best_val_loss"] is None or val_loss < history["best_val_loss"]:
            history["best_epoch"], history["best_val_loss"] = epoch, val_loss
            save_model_checkpoint(resume_dir / BEST, unet, unet_cfg, scheduler, trainer, {**extra, "epoch": epoch, "val_loss": val_loss})
        # written after best.ckpt: a resumed run always finds the best of the epochs it skips
        save_model_checkpoint(resume_dir / LAST, unet, unet_cfg, scheduler, trainer, {**extra, "epoch": epoch, "history": history})
    return history


def export_model(
    resume_dir: Path,
    out_checkpoint: Path,
    out_config: Path,
    z_bins: int,
    unet_cfg: UNetConfig,
    settings: ReplicaTrainSettings,
    history: dict[str, Any],
    data: dict[str, Any],
) -> None:
    """``best.ckpt`` (copied from the run's best) and the ``config.yaml`` that describes it."""
    with atomic_path(out_checkpoint) as tmp:
        shutil.copyfile(resume_dir / BEST, tmp)
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
