"""The mixing rule: which samples of a training batch get synthetic images.

Per training batch of B samples and per enabled modality m (the group's AugmentationConfig):

1. with probability ``prob`` the batch is augmented for m (else it stays real);
2. a share r is drawn uniformly from ``mix_ratio_range`` = [low, high];
3. k = floor(r B + u), u ~ U[0, 1): stochastic rounding, so E[k | r] = r B exactly and the
   synthetic share of an augmented batch is (low + high) / 2 on average, however small B is
   (1-5 % of a batch of 16 is 0.16-0.8 images: k is 0 or 1, and 1 with probability r B);
   k always lies in [floor(low B), ceil(high B)] and never exceeds B;
4. k distinct positions are drawn; at each, the sample's m image is replaced by a synthetic
   image of the sample's own phase (the other modalities stay real). One generate() request
   per distinct phase, at most ``batch_limit`` images each.

(The alternative k = max(1, round(r B)) puts at least one synthetic image in every augmented
batch: for B = 16 and 1-5 % that is 1 image, a share of 6.25 %, above the whole range.)

All draws come from a NumPy generator seeded with ``sha256_seed("genaug-mix", seed, epoch,
batch)``, and the synthetic images from seeds derived the same way: a batch's plan and images
depend only on (seed, epoch, batch index), so a resumed run mixes exactly as an uninterrupted one.
Only training batches pass through here; evaluation never sees a manager.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ..seeding import numpy_generator, sha256_seed
from .augmentation import MODALITIES, PHASES, AugmentationConfig


def synthetic_count(batch_size: int, mix_ratio_range: tuple[float, float], rng: np.random.Generator) -> int:
    """k for one augmented batch: r ~ U(mix_ratio_range), k = floor(r B + u) with u ~ U[0, 1) (steps 2-3)."""
    low, high = mix_ratio_range
    ratio = rng.uniform(low, high)
    return min(batch_size, math.floor(ratio * batch_size + rng.random()))


@dataclass(frozen=True)
class Replacement:
    """The synthetic images one modality gets in one batch."""

    modality: str
    positions: np.ndarray  # (k,) batch positions, ascending
    phases: np.ndarray  # (k,) the phase index of each position's sample


def plan_batch(phases: np.ndarray, configs: Mapping[str, AugmentationConfig], rng: np.random.Generator) -> list[Replacement]:
    """Steps 1-4 for a batch whose samples have phase indices ``phases`` (B,); enabled modalities in MODALITIES order."""
    plan = []
    for modality in MODALITIES:
        config = configs.get(modality)
        if config is None or not config.enabled or rng.random() >= config.prob:
            continue
        k = synthetic_count(len(phases), config.mix_ratio_range, rng)
        if k:
            positions = np.sort(rng.choice(len(phases), size=k, replace=False))
            plan.append(Replacement(modality, positions, np.asarray(phases)[positions]))
    return plan


def batch_rng(seed: int, epoch: int, batch: int) -> np.random.Generator:
    return numpy_generator(sha256_seed("genaug-mix", seed, epoch, batch))


def synthetic_images(manager, replacement: Replacement, seed: int, epoch: int, batch: int, size: int) -> np.ndarray:
    """(k, C, size, size) synthetic images for a replacement: one request per distinct phase (chunked at batch_limit)."""
    limit = manager.modality_config(replacement.modality).batch_limit
    images = None
    for phase in np.unique(replacement.phases):
        where = np.flatnonzero(replacement.phases == phase)
        for chunk, start in enumerate(range(0, len(where), limit)):
            part = where[start : start + limit]
            request_seed = sha256_seed("genaug-synthetic", seed, epoch, batch, replacement.modality, int(phase), chunk)
            generated = manager.generate(replacement.modality, PHASES[phase], len(part), request_seed, size=size)  # (n, C, S, S)
            if images is None:
                images = np.empty((len(replacement.positions), *generated.shape[1:]), dtype=np.float32)  # (k, C, S, S)
            images[part] = generated
    return images
