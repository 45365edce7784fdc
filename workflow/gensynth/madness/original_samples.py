"""The group's own sample sets (``gen_data_with_w{g}_w{w}``, ``gen_index_with_w{g}_w{w}``: tensors saved with
``torch.save``) as the module's image sets: (N, 1, 28, 28) float32 in [-1, 1] and int64 labels; and the
``weights_only`` load that its checkpoints share (no diffusers here: the metrics job needs none)."""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import GensynthError
from .original_layout import CHANNELS, IMAGE_SIZE, NUM_CLASSES, sample_set_problem


def torch_load(path: str | Path):
    """A torch.save file loaded with weights_only=True on the CPU; one error naming the file (and the refused global)."""
    path = Path(path)
    if not path.is_file():
        raise GensynthError(f"{path}: not found")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message is a page of advice; its reason is one line of it
        reason = re.search(r"WeightsUnpickler error: (.*?)(?: Please |$)", str(exc), re.M)
        raise GensynthError(f"{path}: refused, it holds more than tensors ({reason.group(1) if reason else 'unpickling refused'})") from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise GensynthError(f"{path}: not a readable torch.save file ({' '.join(str(exc).split())})") from None


def load_tensor(path: str | Path) -> torch.Tensor:
    """One tensor saved with torch.save (a sample set's images or labels)."""
    value = torch_load(path)
    if not isinstance(value, torch.Tensor):
        raise GensynthError(f"{path}: not a single tensor (found {type(value).__name__}): expected torch.save(tensor)")
    return value


def load_sample_set(data_path: str | Path, index_path: str | Path) -> tuple[np.ndarray, np.ndarray, float]:
    """Images in [-1, 1] (N, 1, 28, 28) float32, labels (N,) int64, and the share of pixels outside [0, 1] that
    were clipped (the group's sampler returns x_0 unclipped; the module's own sets are clipped alike)."""
    images, labels = load_tensor(data_path), load_tensor(index_path)
    problem = sample_set_problem(tuple(images.shape), images.is_floating_point(), tuple(labels.shape))
    if problem:
        raise GensynthError(f"{data_path if problem.startswith('images') else index_path}: {problem}")
    images = images.float().reshape(-1, CHANNELS, IMAGE_SIZE, IMAGE_SIZE)
    if not torch.isfinite(images).all():
        raise GensynthError(f"{data_path}: {int((~torch.isfinite(images)).sum())} non-finite pixel values")
    if labels.is_floating_point() and not torch.equal(labels, labels.round()):
        raise GensynthError(f"{index_path}: labels must be whole numbers (the conditioned classes)")
    labels = labels.long()
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise GensynthError(f"{index_path}: labels in [{int(labels.min())}, {int(labels.max())}], expected classes 0..{NUM_CLASSES - 1}")
    clipped = float(((images < 0) | (images > 1)).float().mean()) if images.numel() else 0.0
    return (images.clamp(0, 1) * 2 - 1).numpy(), labels.numpy(), clipped
