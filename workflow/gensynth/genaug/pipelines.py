"""The small per-(modality, phase) diffusion pipelines: trained on one fold's training patients, saved as the group's model folders.

One pipeline per model folder of the group's ``models_5_7/`` layout (``rgb_I`` ... ``depth_map_R``): an
unconditional diffusers ``UNet2DModel`` (no attention) trained with DDPM's loss (Ho et al. 2020) on the
images of one phase, then saved with its EMA weights and a ``DDIMScheduler`` on the training noise
schedule as a ``DDIMPipeline`` (``save_pretrained``, safetensors), which the manager loads back with
``from_pretrained``. The ``rgb_{phase}`` pipelines learn from both cameras' RGB views (depth_rgb and
thermal_rgb draw from them, as in the group's code); each map pipeline from its own map.

Each fold trains its own pipelines on its training patients only (never its validation or test
patients), so no synthetic image carries a test patient's wound.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import DDIMPipeline, DDIMScheduler, UNet2DModel

from ..diffusion import DiffusionTrainConfig, diffusion_trainer, make_train_scheduler
from ..diffusion.shape import NORM_GROUPS
from ..errors import GensynthError
from ..io import atomic_directory
from ..seeding import sha256_seed
from ..training import ResumeFile, run_fingerprint, train_epochs
from .augmentation import CHANNELS, MODEL_FOLDERS, PHASES
from .data import TRAIN, WoundDataset
from .settings import PipelineSettings

log = logging.getLogger(__name__)

# The modalities whose images train each model kind (depth_rgb and thermal_rgb both draw from rgb).
KIND_SOURCES = {"rgb": ("depth_rgb", "thermal_rgb"), "depth_map": ("depth_map",), "thermal_map": ("thermal_map",)}


def split_folder(folder: str) -> tuple[str, str]:
    """``rgb_I`` -> (``rgb``, ``I``); ``depth_map_R`` -> (``depth_map``, ``R``)."""
    if folder not in MODEL_FOLDERS:
        raise GensynthError(f"model folder {folder!r}: expected one of {', '.join(MODEL_FOLDERS)}")
    kind, phase = folder.rsplit("_", 1)
    return kind, phase


def training_images(dataset: WoundDataset, fold: int, folder: str) -> np.ndarray:
    """The fold's training images of the folder's kind and phase, (N, C, S, S) in [0, 1] (both RGB views for rgb)."""
    kind, phase = split_folder(folder)
    rows = dataset.indices(fold, TRAIN)
    rows = rows[dataset.phase[rows] == PHASES.index(phase)]
    images = np.concatenate([dataset.images[m][rows] for m in KIND_SOURCES[kind]])
    if len(images) < 2:
        raise GensynthError(f"fold {fold}, {folder}: {len(images)} training image(s) of phase {phase}; expected at least 2 (more patients, or fewer folds)")
    return images


def unconditional_unet(channels: int, image_size: int, block_out_channels, layers_per_block: int) -> UNet2DModel:
    """The pipelines' UNet: diffusers' UNet2DModel without classes, plain ResNet levels (attention in its mid block only)."""
    levels = len(block_out_channels)
    return UNet2DModel(
        sample_size=image_size,
        in_channels=channels,
        out_channels=channels,
        block_out_channels=tuple(block_out_channels),
        layers_per_block=layers_per_block,
        down_block_types=("DownBlock2D",) * levels,
        up_block_types=("UpBlock2D",) * levels,
        norm_num_groups=NORM_GROUPS,
    )


def train_pipeline(
    images: np.ndarray, settings: PipelineSettings, device: torch.device, resume_path: Path, fold: int, folder: str
) -> tuple[DDIMPipeline, list[dict[str, Any]]]:
    """Train a UNet on ``images`` (N, C, S, S) in [0, 1]; returns the DDIMPipeline of its EMA weights and the history.

    Weights, batches and noise draw from ``sha256_seed("genaug-pipeline", seed, fold, folder)``. The run
    resumes from ``resume_path`` after an interruption if it holds a run on the same images and settings.
    """
    x0 = torch.from_numpy(images * 2 - 1)  # (N, C, S, S) in [-1, 1], the scheduler's clip range
    kind, _ = split_folder(folder)
    seed = sha256_seed("genaug-pipeline", settings.seed, fold, folder)
    torch.manual_seed(seed)  # the initial weights
    unet = unconditional_unet(CHANNELS[kind], images.shape[-1], settings.block_out_channels, settings.layers_per_block).to(device)
    scheduler = make_train_scheduler(settings.num_train_timesteps, prediction_type=settings.prediction_type)
    config = DiffusionTrainConfig(lr=settings.lr, batch_size=settings.batch_size, ema_decay=settings.ema_decay, seed=seed, cond_dropout=0.0)
    trainer = diffusion_trainer(unet, scheduler, config)
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes()).hexdigest()
    resume = ResumeFile(resume_path, run_fingerprint(images=digest, shape=images.shape, fold=fold, folder=folder, settings=settings.fingerprint_settings()))
    history = train_epochs(trainer, settings.epochs, lambda epoch: {"loss": trainer.train_epoch(x0)}, resume=resume, desc=folder)
    ema_unet = copy.deepcopy(unet)
    ema_unet.load_state_dict(trainer.ema_state_dict())
    pipeline = DDIMPipeline(unet=ema_unet.cpu().eval(), scheduler=DDIMScheduler.from_config(scheduler.config))
    return pipeline, history


def save_pipeline(pipeline: DDIMPipeline, folder: str | os.PathLike) -> Path:
    """save_pretrained (safetensors) into ``folder``, atomically."""
    with atomic_directory(folder) as tmp:
        pipeline.save_pretrained(tmp, safe_serialization=True)
    return Path(folder)
