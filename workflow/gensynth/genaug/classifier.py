"""The multimodal fusion classifier of healing phases, and its training with generative augmentation.

Late fusion: one small CNN branch per modality, their features concatenated, one linear layer::

    logits = head([branch_depth_rgb(x_1), branch_thermal_rgb(x_2), branch_depth_map(x_3), branch_thermal_map(x_4)])
    branch(x) = pool(SiLU(conv3(SiLU(conv2(SiLU(conv1((x - mean) / std)))))))   # three 3x3 stride-2 convolutions

(mean, std per channel from the training images, stored with the weights.) Training runs on the
shared :class:`gensynth.training.Trainer` (AdamW, EMA) with cross-entropy; every training batch passes
through the mixing rule (:mod:`gensynth.genaug.mixing`) when a manager is given, and nothing else
does: validation and test predictions read the real images only. The test predictions come from
the EMA weights after the last epoch (the validation patients are only monitored, never selected on).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..io import load_checkpoint
from ..seeding import numpy_generator, sha256_seed
from ..training import ResumeFile, TrainConfig, Trainer, run_fingerprint, train_epochs
from .augmentation import MODALITIES, PHASES, AugmentationConfig, image_channels
from .data import TEST, TRAIN, VALIDATION, WoundDataset
from .mixing import Replacement, batch_rng, plan_batch, synthetic_images
from .settings import ClassifierSettings
from .sources import RealImages, wrong_phases

log = logging.getLogger(__name__)


class Branch(nn.Module):
    """(B, C, S, S) -> (B, width): three 3x3 stride-2 convolutions with SiLU, then global average pooling."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.layers = nn.Sequential(
            nn.Conv2d(channels, width // 2, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(width // 2, width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.Conv2d(width, width, 3, stride=2, padding=1),
            nn.SiLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean[:, None, None]) / self.std[:, None, None]  # (B, C, S, S)
        return self.layers(x)  # (B, width)


class FusionClassifier(nn.Module):
    """Logits of the three phases from the four modalities, passed in MODALITIES order."""

    def __init__(self, width: int = 16):
        super().__init__()
        self.branches = nn.ModuleDict({m: Branch(image_channels(m), width) for m in MODALITIES})
        self.head = nn.Linear(width * len(MODALITIES), len(PHASES))

    def set_normalization(self, images: Mapping[str, np.ndarray]) -> None:
        """Per-channel mean and std of each modality's training images (N, C, S, S)."""
        for modality, branch in self.branches.items():
            branch.mean.copy_(torch.from_numpy(images[modality].mean(axis=(0, 2, 3))))
            branch.std.copy_(torch.from_numpy(images[modality].std(axis=(0, 2, 3)).clip(1e-3)))

    def features(self, *images: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each branch's features, (B, width) per modality."""
        return {m: branch(x) for (m, branch), x in zip(self.branches.items(), images)}

    def forward(self, *images: torch.Tensor) -> torch.Tensor:
        fused = torch.cat(list(self.features(*images).values()), dim=1)  # (B, 4 * width)
        return self.head(fused)  # (B, 3)


def cross_entropy(model: nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
    """The loss of a batch (labels, rows, *images in MODALITIES order); it draws nothing at random."""
    labels, _, *images = batch
    return F.cross_entropy(model(*images), labels)


def tensors(dataset: WoundDataset, rows: np.ndarray) -> tuple[torch.Tensor, ...]:
    """(labels (N,), dataset rows (N,), *images (N, C, S, S) in MODALITIES order) of some visits."""
    return (torch.from_numpy(dataset.phase[rows]), torch.from_numpy(rows), *(torch.from_numpy(dataset.images[m][rows]) for m in MODALITIES))


IMAGES = 2  # where the images start in a batch (after labels and rows)


@dataclass
class Mixer:
    """Puts images from a source into training batches (the rule of gensynth.genaug.mixing; gensynth.genaug.sources)."""

    source: Any  # a GenerativeAugmentationManager or SyntheticPool (generate, modality_config, cache_info), or RealImages
    configs: Mapping[str, AugmentationConfig]
    seed: int
    image_size: int
    mode: str = "replace"  # replace the planned visits' images, or add swapped copies of those visits
    wrong_phase: bool = False  # the negative control: synthetic images of the next phase

    def images(self, replacement: Replacement, rows: np.ndarray, epoch: int, index: int) -> np.ndarray:
        """(k, C, S, S): the source's images for the replacement's positions."""
        if isinstance(self.source, RealImages):
            rng = numpy_generator(sha256_seed("genaug-real", self.seed, epoch, index, replacement.modality))
            return self.source.draw(replacement.modality, rows[replacement.positions], rng)
        if self.wrong_phase:
            replacement = dataclasses.replace(replacement, phases=wrong_phases(replacement.phases))
        return synthetic_images(self.source, replacement, self.seed, epoch, index, self.image_size)

    def __call__(self, batch: tuple[torch.Tensor, ...], epoch: int, index: int) -> tuple[tuple[torch.Tensor, ...], dict[str, int]]:
        """The batch (labels, rows, *images) with the plan's images swapped in place, or appended as swapped copies;
        and the count per modality."""
        labels, rows = batch[0].cpu().numpy(), batch[1].cpu().numpy()
        counts, added = {}, []
        for replacement in plan_batch(labels, self.configs, batch_rng(self.seed, epoch, index)):
            images = torch.from_numpy(self.images(replacement, rows, epoch, index))  # (k, C, S, S)
            positions = torch.from_numpy(replacement.positions).to(batch[0].device)
            channel = IMAGES + MODALITIES.index(replacement.modality)
            if self.mode == "add":
                copy = [t[positions].clone() for t in batch]
                copy[channel] = images.to(copy[channel].device, copy[channel].dtype)
                added.append(copy)
            else:
                batch[channel][positions] = images.to(batch[channel].device, batch[channel].dtype)
            counts[replacement.modality] = len(replacement.positions)
        if added:
            batch = tuple(torch.cat([t, *(copy[i] for copy in added)]) for i, t in enumerate(batch))
        return batch, counts


@torch.no_grad()
def predict(trainer: Trainer, dataset: WoundDataset, rows: np.ndarray) -> np.ndarray:
    """Phase probabilities (N, 3) of some visits, from the EMA weights and the real images only."""
    images = tensors(dataset, rows)[IMAGES:]
    probabilities = []
    with trainer.ema_weights():
        trainer.model.eval()
        for start in range(0, len(rows), trainer.config.batch_size):
            batch = [x[start : start + trainer.config.batch_size].to(trainer.device) for x in images]
            probabilities.append(torch.softmax(trainer.model(*batch), dim=1).cpu())
    return torch.cat(probabilities).numpy() if probabilities else np.empty((0, len(PHASES)), dtype=np.float32)


def train_classifier(
    dataset: WoundDataset,
    fold: int,
    seed: int,
    settings: ClassifierSettings,
    device: torch.device,
    mixer: Mixer | None = None,
    resume_path: Path | None = None,
    data_sha256: str = "",
    arm: str = "",
) -> tuple[Trainer, list[dict[str, Any]]]:
    """Train on the fold's training patients (augmented when ``mixer`` is given); returns the trainer and the history.

    Per epoch the history holds the training loss, the validation loss and accuracy (EMA weights, real
    images), the synthetic images put in (in all and per modality), the augmented batches and the
    manager's cache counters (cumulative over the job).
    """
    train_rows, val_rows = dataset.indices(fold, TRAIN), dataset.indices(fold, VALIDATION)
    train = tensors(dataset, train_rows)
    torch.manual_seed(seed)  # the initial weights
    model = FusionClassifier(settings.width)
    model.set_normalization({m: dataset.images[m][train_rows] for m in MODALITIES})
    model.to(device)
    config = TrainConfig(lr=settings.lr, batch_size=settings.batch_size, ema_decay=settings.ema_decay, seed=seed)
    trainer = Trainer(model, cross_entropy, config)
    val = tensors(dataset, val_rows)

    def epoch(number: int) -> dict[str, Any]:
        losses, synthetic, augmented = [], dict.fromkeys(MODALITIES, 0), 0
        for index, batch in enumerate(trainer.batches(*train)):
            if mixer is not None:
                batch, counts = mixer(batch, number, index)
                augmented += bool(counts)
                for modality, count in counts.items():
                    synthetic[modality] += count
            losses.append(trainer.train_step(*batch))
        record: dict[str, Any] = {"train_loss": float(np.mean(losses))}
        if len(val_rows):
            record["val_loss"] = trainer.evaluate(*val)
            record["val_accuracy"] = float((predict(trainer, dataset, val_rows).argmax(axis=1) == dataset.phase[val_rows]).mean())
        record["synthetic"] = sum(synthetic.values())
        record.update({f"synthetic_{m}": n for m, n in synthetic.items() if mixer is not None and mixer.configs[m].enabled})
        record["augmented_batches"] = augmented
        if mixer is not None and hasattr(mixer.source, "cache_info"):
            info = mixer.source.cache_info()
            record.update(cache_hits=info.hits, cache_misses=info.misses, cache_hit_rate=info.hit_rate)
            log.info(
                "%s fold %d seed %d, epoch %d: %d synthetic images in %d batches, cache hit rate %.3f (%d hits, %d misses)",
                arm,
                fold,
                seed,
                number,
                record["synthetic"],
                augmented,
                info.hit_rate,
                info.hits,
                info.misses,
            )
        return record

    resume = None
    if resume_path is not None:
        augmentation = {m: dataclasses.asdict(c) for m, c in mixer.configs.items()} if mixer is not None else None
        if mixer is not None:
            augmentation = {"modalities": augmentation, "mode": mixer.mode, "wrong_phase": mixer.wrong_phase, "source": type(mixer.source).__name__}
        fingerprint = run_fingerprint(
            data=data_sha256,
            fold=fold,
            seed=seed,
            arm=arm,
            augmentation=augmentation,
            settings={k: v for k, v in dataclasses.asdict(settings).items() if k != "epochs"},
        )
        resume = ResumeFile(resume_path, fingerprint)
    history = train_epochs(trainer, settings.epochs, epoch, resume=resume, desc=f"{arm or 'classifier'} fold {fold} seed {seed}")
    return trainer, history


def held_out_predictions(trainer: Trainer, dataset: WoundDataset, fold: int) -> dict[str, np.ndarray]:
    """The fold's test visits: their dataset rows, labels, predicted phases and probabilities."""
    rows = dataset.indices(fold, TEST)
    probabilities = predict(trainer, dataset, rows)
    return {"index": rows, "label": dataset.phase[rows], "prediction": probabilities.argmax(axis=1), "probabilities": probabilities}


def load_classifier(path: str, device: torch.device) -> FusionClassifier:
    """The first seed's classifier of a genaug_classify checkpoint, on ``device``, in eval mode."""
    checkpoint = load_checkpoint(path)
    model = FusionClassifier(int(checkpoint["width"]))
    model.load_state_dict(checkpoint["state_dicts"][str(checkpoint["seeds"][0])])
    return model.to(device).eval()
