"""The fixed probe set at which every generation's Jacobian spectrum is measured.

A probe is a real test image x0 noised to timestep t with fixed noise eps (DDPM forward
process, Ho et al. 2020 eq. 4): ``x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps``.
Probes are made once per unit and saved, so every generation of the unit's chains sees the same
inputs, and each unit its own draw of images and noise.
"""

from __future__ import annotations

import numpy as np
import torch

from ..diffusion import make_train_scheduler
from ..errors import GensynthError
from ..io import load_npz
from ..seeding import numpy_generator, sha256_seed, torch_generator
from .data import NUM_CLASSES, RealData
from .naming import unit_parts

PROBE_ARRAYS = ("x_t", "timesteps", "labels", "image_index", "x0", "noise")


def probe_image_indices(y_test: np.ndarray, num_images: int, seed: int, unit: int) -> np.ndarray:
    """The unit's ``num_images`` test images, classes taken in turn (0, 1, ..., 9, 0, ...), each chosen at random."""
    rng = numpy_generator(sha256_seed(*unit_parts(seed, unit), "probe-images"))
    by_class = [rng.permutation(np.flatnonzero(y_test == c)).tolist() for c in range(NUM_CLASSES)]
    chosen = []
    for i in range(num_images):
        pool = by_class[i % NUM_CLASSES]
        if not pool:
            raise GensynthError(f"madness.jacobian.num_images = {num_images}: the test split runs out of class {i % NUM_CLASSES} images")
        chosen.append(pool.pop())
    return np.array(chosen, dtype=np.int64)


def make_probes(
    real: RealData, num_images: int, timesteps: list[int], n_T: int, beta_start: float, beta_end: float, seed: int, unit: int
) -> dict[str, np.ndarray]:
    """The unit's P = num_images x len(timesteps) probes, image-major; one noise draw per probe."""
    if any(not 0 <= t < n_T for t in timesteps):
        raise GensynthError(f"madness.jacobian.timesteps {timesteps}: each must lie in [0, n_T = {n_T})")
    scheduler = make_train_scheduler(n_T, beta_start=beta_start, beta_end=beta_end)
    return noised_probes(real, num_images, timesteps, seed, unit, "probe-noise", lambda x0, noise, t: (x0, scheduler.add_noise(x0, noise, t)))


def noised_probes(real: RealData, num_images: int, timesteps: list[int], seed: int, unit: int, noise_name: str, noise_images) -> dict[str, np.ndarray]:
    """The unit's probe set: image-major, one noise draw per probe; ``noise_images(x0, noise, t)`` gives the
    model's (x0, x_t) from the real images in [-1, 1]."""
    images = probe_image_indices(real.y_test, num_images, seed, unit)
    image_index = np.repeat(images, len(timesteps))  # (P,)
    t = torch.tensor(list(timesteps) * num_images, dtype=torch.long)  # (P,)
    x0 = torch.from_numpy(real.x_test[image_index])  # (P, C, S, S)
    noise = torch.randn(x0.shape, generator=torch_generator(sha256_seed(*unit_parts(seed, unit), noise_name)))  # (P, C, S, S)
    x0, x_t = noise_images(x0, noise, t)
    return {
        "x_t": x_t.numpy().astype(np.float32),
        "timesteps": t.numpy(),
        "labels": real.y_test[image_index].astype(np.int64),
        "image_index": image_index,
        "x0": x0.numpy(),
        "noise": noise.numpy(),
    }


def load_probes(path) -> dict[str, np.ndarray]:
    probes = load_npz(path, required=PROBE_ARRAYS)
    count = len(probes["timesteps"])
    if probes["x_t"].ndim != 4 or any(len(probes[name]) != count for name in PROBE_ARRAYS):
        raise GensynthError(
            f"{path}: probe arrays must share their first dimension P (x_t of shape (P, C, S, S)), found "
            + ", ".join(f"{name} {probes[name].shape}" for name in PROBE_ARRAYS)
        )
    return probes
