"""Where the images the mixing rule puts into training batches come from, and how they enter a batch.

Sources (an arm's ``--augment-source``):

- ``generated``: synthetic images of each visit's own phase, from the pipelines: a
  :class:`SyntheticPool` pre-generated once per split and folder (the DAG's ``pools/`` artifacts), or a
  ``GenerativeAugmentationManager`` sampling per batch (users' Stable Diffusion folders);
- ``wrong_phase``: the same synthetic images, of the *next* phase (I -> P -> R -> I) under the visit's
  true label: the negative control, which must hurt at a high share if the analysis can see harm;
- ``real``: real images of the same phase from *another* training patient of the split (a
  :class:`RealImages`): the positive control, the best a perfect generator could offer.

Modes (``--augment-mode``): ``replace`` swaps a batch visit's image of the modality in place (the
group's rule); ``add`` appends a copy of that visit whose image of the modality is swapped, so every
real image stays in the batch and it grows by k.

A pool is an NPZ holding one array per model folder (``rgb_I`` ...), (n, C, S, S) float32 in [0, 1],
and its ``inference_steps``; a request of a modality draws from the pool at the modality's step count,
with replacement, at indices from the request's seed: the same seed gives the same images, on any device.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..errors import GensynthError
from ..io import load_npz
from ..seeding import numpy_generator
from .augmentation import MODEL_FOLDERS, PHASES, AugmentationConfig, check_modality, image_channels, model_folder
from .data import TRAIN, WoundDataset

SOURCES = ("generated", "wrong_phase", "real")
MODES = ("replace", "add")


def wrong_phases(phases: np.ndarray) -> np.ndarray:
    """The negative control's phase of each visit: the next one (I -> P, P -> R, R -> I), never its own."""
    return (np.asarray(phases) + 1) % len(PHASES)


class PoolInfo:
    """The cache counters a pool reports (its images are all in memory: every request is a hit)."""

    def __init__(self, hits: int, loads: int):
        self.hits, self.misses, self.loads, self.evictions = hits, 0, loads, 0
        self.hit_rate = 1.0 if hits else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {"hits": self.hits, "misses": 0, "loads": self.loads, "evictions": 0, "hit_rate": self.hit_rate}


class SyntheticPool:
    """Pre-generated synthetic images per (model folder, step count), served through the manager's ``generate`` interface."""

    def __init__(self, images: Mapping[tuple[str, int], np.ndarray], configs: Mapping[str, AugmentationConfig], where: str = "the pools"):
        self.images = dict(images)
        self.config = dict(configs)
        self.requests = 0
        for modality, config in self.config.items():
            if not config.enabled:
                continue
            for phase in PHASES:
                key = (model_folder(modality, phase), config.inference_steps)
                pool = self.images.get(key)
                if pool is None:
                    raise GensynthError(f"{where}: no pool of {key[0]} at {key[1]} steps ({modality} in phase {phase} draws from it)")
                if pool.ndim != 4 or pool.shape[1] != image_channels(modality) or len(pool) == 0:
                    raise GensynthError(f"{where}: pool {key[0]} has shape {pool.shape}; expected (n >= 1, {image_channels(modality)}, S, S)")

    @classmethod
    def load(cls, paths: Sequence[str | Path], configs: Mapping[str, AugmentationConfig]) -> SyntheticPool:
        images = {}
        for path in paths:
            arrays = load_npz(path, required=("inference_steps",))
            steps = int(arrays.pop("inference_steps"))
            unknown = sorted(set(arrays) - set(MODEL_FOLDERS))
            if unknown:
                raise GensynthError(f"{path}: unknown array(s) {', '.join(unknown)}; expected model folders ({', '.join(MODEL_FOLDERS)})")
            images.update({(name, steps): array.astype(np.float32, copy=False) for name, array in arrays.items()})
        return cls(images, configs, ", ".join(map(str, paths)))

    def modality_config(self, modality: str) -> AugmentationConfig:
        return self.config[check_modality(modality)]

    def generate(self, modality: str, phase: str, n: int, seed: int, size: int | None = None) -> np.ndarray:
        """``n`` images of the (modality, phase) folder's pool, drawn with replacement from ``seed``: (n, C, S, S)."""
        pool = self.images[(model_folder(modality, phase), self.modality_config(modality).inference_steps)]
        if size is not None and pool.shape[-1] != size:
            raise GensynthError(f"pool {model_folder(modality, phase)}: images of {pool.shape[-1]} pixels, but the dataset's are {size}")
        self.requests += 1
        return pool[numpy_generator(seed).integers(0, len(pool), n)]

    def cache_info(self) -> PoolInfo:
        return PoolInfo(self.requests, len(self.images))


class RealImages:
    """The positive control: for a visit of a split's training side, a real image of the same phase from another training patient."""

    def __init__(self, dataset: WoundDataset, split: int):
        self.dataset = dataset
        rows = dataset.indices(split, TRAIN)
        self.by_phase = {phase: rows[dataset.phase[rows] == phase] for phase in range(len(PHASES))}

    def draw(self, modality: str, rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(k, C, S, S): per visit row, the ``modality`` image of a random same-phase training visit of another patient
        (of any training patient, the visit's own among them, when no other has a visit of that phase)."""
        chosen = np.empty(len(rows), dtype=np.int64)
        for i, row in enumerate(rows):
            same_phase = self.by_phase[int(self.dataset.phase[row])]
            others = same_phase[self.dataset.patient[same_phase] != self.dataset.patient[row]]
            chosen[i] = rng.choice(others if len(others) else same_phase)
        return self.dataset.images[modality][chosen]
