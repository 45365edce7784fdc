"""The LeNet-style classifier whose penultimate layer is the feature space of FID and PRDC.

LeCun et al. 1998 (LeNet-5) with "same" padding so that any image size divisible by 4
works: two 5x5 convolutions with 2x2 max-pooling, then 120 -> 84 -> 10 fully connected.
Features are the 84 pre-activations of the penultimate layer (before its ReLU, so no unit
is constantly zero and the feature covariance of FID stays full-rank).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import GensynthError
from ..io import load_checkpoint, save_checkpoint
from ..progress import progress
from ..seeding import numpy_generator, sha256_seed, torch_generator
from .evaluation import metrics_with_bootstrap
from .settings import LeNetTrainConfig

CHECKPOINT_FORMAT = "gensynth.madness.lenet/1"


@dataclass
class LeNetConfig:
    image_size: int  # S: input is (B, in_channels, S, S), S divisible by 4
    in_channels: int = 1
    num_classes: int = 10
    feature_dim: int = 84  # width of the penultimate layer: the metrics' feature space

    def __post_init__(self):
        if self.image_size % 4:
            raise GensynthError(f"LeNet image_size {self.image_size}: must be divisible by 4 (two 2x2 poolings)")


class LeNet(nn.Module):
    def __init__(self, cfg: LeNetConfig):
        super().__init__()
        self.cfg = cfg
        self.conv1 = nn.Conv2d(cfg.in_channels, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5, padding=2)
        self.fc1 = nn.Linear(16 * (cfg.image_size // 4) ** 2, 120)
        self.fc2 = nn.Linear(120, cfg.feature_dim)
        self.fc3 = nn.Linear(cfg.feature_dim, cfg.num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        h = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, S/2, S/2)
        h = F.max_pool2d(F.relu(self.conv2(h)), 2)  # (B, 16, S/4, S/4)
        h = F.relu(self.fc1(h.flatten(1)))  # (B, 120)
        return self.fc2(h)  # (B, feature_dim), before the ReLU

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.relu(self.features(x)))  # (B, num_classes) logits


def build_lenet(cfg: LeNetConfig, seed: int) -> LeNet:
    torch.manual_seed(seed)  # the initial weights come from the global generator
    return LeNet(cfg)


def train_lenet(model: LeNet, x: torch.Tensor, y: torch.Tensor, cfg: LeNetTrainConfig) -> list[float]:
    """Adam on cross-entropy; returns the mean training loss of each epoch."""
    generator = torch_generator(cfg.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    losses = []
    model.train()
    for _ in progress(range(cfg.epochs), desc="LeNet", unit="epoch"):
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for start in range(0, len(y), cfg.batch_size):
            index = order[start : start + cfg.batch_size]
            loss = F.cross_entropy(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(index)
        losses.append(total / len(y))
    return losses


@torch.no_grad()
def predict(model: LeNet, x: torch.Tensor, batch_size: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """Features (N, feature_dim) float64 and predicted labels (N,) of images (N, C, S, S)."""
    model.eval()
    features, labels = [], []
    for start in range(0, len(x), batch_size):
        f = model.features(x[start : start + batch_size])  # (b, feature_dim)
        features.append(f.double().numpy())
        labels.append(model.fc3(F.relu(f)).argmax(1).numpy())
    return np.concatenate(features), np.concatenate(labels)


def generated_set_metrics(
    model: LeNet, real_features: np.ndarray, x_fake: np.ndarray, y_fake: np.ndarray, nearest_k: int, n_bootstrap: int, seed: int
) -> tuple[dict[str, Any], np.ndarray]:
    """One generated set's FID/PRDC with bootstrap spreads against the real features, its label accuracy and
    size; and its features. Every set draws the same bootstrap resamples."""
    fake_features, fake_predicted = predict(model, torch.from_numpy(x_fake))  # (M, feature_dim)
    rng = numpy_generator(sha256_seed("madness", seed, "bootstrap"))
    record = {
        **metrics_with_bootstrap(real_features, fake_features, nearest_k, n_bootstrap, rng),
        "label_accuracy": float((fake_predicted == y_fake).mean()),  # does the extractor read the conditioned class?
        "num_generated": len(fake_features),
    }
    return record, fake_features


def accuracy(model: LeNet, x: torch.Tensor, y: torch.Tensor) -> float:
    return float((predict(model, x)[1] == y.numpy()).mean())


def save_lenet(path: str | Path, model: LeNet, extra: dict[str, Any]) -> None:
    save_checkpoint(
        path,
        {"format": CHECKPOINT_FORMAT, "config": dataclasses.asdict(model.cfg), "model": model.state_dict(), "extra": extra},
    )


def load_lenet(path: str | Path) -> LeNet:
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise GensynthError(f"{path}: not a LeNet feature-extractor checkpoint (format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
    try:
        model = LeNet(LeNetConfig(**state["config"]))
        model.load_state_dict(state["model"])
    except (TypeError, RuntimeError, KeyError) as exc:
        raise GensynthError(f"{path}: LeNet weights or config do not fit this version ({str(exc).splitlines()[0]})") from None
    return model.eval()


def checked_extractor(path: str | Path, x_test: torch.Tensor, y_test: torch.Tensor, min_accuracy: float) -> tuple[LeNet, float]:
    """The extractor and its accuracy on the real test split; refused below ``min_accuracy``."""
    model = load_lenet(path)
    if model.cfg.image_size != x_test.shape[-1] or model.cfg.in_channels != x_test.shape[1]:
        raise GensynthError(
            f"{path}: the extractor takes {model.cfg.in_channels}x{model.cfg.image_size}x{model.cfg.image_size} images, "
            f"the data has {x_test.shape[1]}x{x_test.shape[2]}x{x_test.shape[3]}"
        )
    acc = accuracy(model, x_test, y_test)
    if acc < min_accuracy:
        raise GensynthError(
            f"{path}: feature extractor's test accuracy {acc:.4f} is below madness.feature_extractor.min_accuracy = {min_accuracy} "
            "(train it longer, or lower the threshold knowingly)"
        )
    return model, acc
