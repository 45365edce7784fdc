"""How close each pipeline's samples are to the real images of its phase: FID on the classifier's own features.

Features: the (B, width) output of the classifier branch of the modality the images are for (the
fold's baseline classifier, its first seed), so the distance is measured in what the classifier
looks at. Per fold, model folder, modality drawing from it (rgb: depth_rgb and thermal_rgb) and
inference-step count:

- ``fid_synthetic``: FID(synthetic images, real images of the phase from the fold's training
  patients), the images the pipeline learned from;
- ``fid_heldout``: FID(real images of the phase from the fold's test patients, the same training
  images): how far new real patients lie from the training images, the floor to read the first
  against. Synthetic images far closer than it are copies; far above it, poor samples.

With a few dozen images and 16 features both are noisy and biased upwards (FID's bias grows as
the sample shrinks): compare them with each other and across step counts, not with published FIDs.
A set too small or degenerate for FID gives null and the reason.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import GensynthError
from ..metrics import fid
from ..seeding import sha256_seed
from .augmentation import MODALITIES, MODEL_KIND, PHASES, augmentation_configs
from .classifier import FusionClassifier
from .data import TEST, TRAIN, WoundDataset
from .pipelines import split_folder


@torch.no_grad()
def branch_features(model: FusionClassifier, modality: str, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """(N, C, S, S) images -> (N, width) features of the modality's branch."""
    branch = model.branches[modality].eval()
    device = next(model.parameters()).device
    parts = [branch(torch.from_numpy(images[i : i + batch_size]).to(device)).cpu().double() for i in range(0, len(images), batch_size)]
    return torch.cat(parts).numpy() if parts else np.empty((0, model.head.in_features // len(MODALITIES)))


def safe_fid(features: np.ndarray, reference: np.ndarray) -> tuple[float | None, str | None]:
    """FID(reference, features), or None and the reason when the sets are too small or degenerate for it."""
    try:
        return fid(reference, features), None
    except GensynthError as exc:
        return None, str(exc)


def phase_images(dataset: WoundDataset, fold: int, role: int, modality: str, phase: str) -> np.ndarray:
    rows = dataset.indices(fold, role)
    return dataset.images[modality][rows[dataset.phase[rows] == PHASES.index(phase)]]


def generate_many(manager, modality: str, phase: str, n: int, seed: int, size: int) -> np.ndarray:
    """``n`` images in requests of at most the modality's batch_limit, chunk c seeded with ``sha256_seed("genaug-quality", seed, c)``:
    (n, C, size, size), the first m the same whatever n."""
    limit = manager.modality_config(modality).batch_limit
    chunks = enumerate(range(0, n, limit))
    return np.concatenate([manager.generate(modality, phase, min(limit, n - start), sha256_seed("genaug-quality", seed, c), size) for c, start in chunks])


def pipeline_quality(
    managers: Mapping[int, Any], model: FusionClassifier, dataset: WoundDataset, fold: int, folder: str, n_samples: int, seed: int
) -> list[dict[str, Any]]:
    """One row per modality drawing from ``folder`` and step count; ``managers`` maps a step count to a manager sampling with it.

    Every step count starts from the same initial noise (generate_many's seeds).
    """
    kind, phase = split_folder(folder)
    size = dataset.image_size
    rows = []
    for modality in (m for m in MODALITIES if MODEL_KIND[m] == kind):
        train_features = branch_features(model, modality, phase_images(dataset, fold, TRAIN, modality, phase))
        heldout_features = branch_features(model, modality, phase_images(dataset, fold, TEST, modality, phase))
        floor, floor_note = safe_fid(heldout_features, train_features)
        for steps, manager in managers.items():
            synthetic = generate_many(manager, modality, phase, n_samples, seed, size)  # (n_samples, C, S, S)
            value, note = safe_fid(branch_features(model, modality, synthetic), train_features)
            rows.append(
                {
                    "fold": fold,
                    "folder": folder,
                    "modality": modality,
                    "phase": phase,
                    "inference_steps": steps,
                    "n_synthetic": len(synthetic),
                    "n_train_real": len(train_features),
                    "n_heldout_real": len(heldout_features),
                    "fid_synthetic": value,
                    "fid_heldout": floor,
                    "note": note or floor_note,
                }
            )
    return rows


@contextlib.contextmanager
def folder_sampler(models: str | Path, folder: str, inference_steps: int, device: torch.device, batch_limit: int = 64) -> Iterator[tuple[Any, str, str]]:
    """A manager holding one pipeline folder, the first modality drawing from it and the folder's phase; closed on exit."""
    from .manager import GenerativeAugmentationManager

    kind, phase = split_folder(folder)
    modality = next(m for m in MODALITIES if MODEL_KIND[m] == kind)
    settings = {"enabled": True, "inference_steps": inference_steps, "batch_limit": batch_limit, "max_models": 1}
    configs = augmentation_configs(
        {"use_generative_augmentation": True, "modalities": {m: settings if m == modality else {"enabled": False} for m in MODALITIES}}, "pool"
    )
    manager = GenerativeAugmentationManager(models, configs, device)
    try:
        yield manager, modality, phase
    finally:
        manager.close()
