"""A procedural FLAIR-like brain phantom: axial slices of simulated subjects with lesion masks.

Each subject is a 3-D head sampled at evenly spaced slice positions ``z`` in (0, 1)
(0 = inferior, 1 = superior). A slice is drawn on a 2x supersampled grid and averaged
down, so tissue borders get partial-volume values:

1. head outline: an ellipse whose radius follows ``sqrt(1 - ((z - 0.42) / 0.62)^2)`` (wide
   in the middle, small at the vertex) and whose outline is bent by the subject's low
   harmonics; scalp (bright), skull (dark), a CSF rim, then the brain;
2. cortex: grey matter in an outer band of the brain whose inner edge is folded (gyri);
   white matter inside, darker than grey matter as in FLAIR;
3. lateral ventricles: two dark (CSF-suppressed) ellipses, largest at mid height;
4. lesions: ellipsoids in the brain, hyperintense; the mask is the lesion's cross-section,
   kept when it covers at least ``min_lesion_fraction`` of the slice (else the lesion is not
   drawn in that slice either, so image and mask always agree); epilepsy subjects have more;
5. smooth texture (low-pass noise) and a gentle bias field inside the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..errors import GensynthError
from ..seeding import numpy_generator, sha256_seed
from .data import DOMAIN_MAPPING, SliceDataset
from .settings import PhantomConfig

# FLAIR-like intensities in [-1, 1]: CSF is suppressed (dark), lesions are hyperintense.
BACKGROUND, SCALP, SKULL, CSF, GREY, WHITE, LESION = -1.0, 0.3, -0.75, -0.55, 0.35, 0.05, 0.9
SUPERSAMPLE = 2


@dataclass
class Subject:
    """Anatomy of one simulated head (all lengths in image units, the image spanning [-1, 1])."""

    scale: float
    aspect: float  # anterior-posterior over left-right radius
    tilt: float  # in-plane rotation, radians
    center: tuple[float, float]
    harmonics: np.ndarray  # (3, 2): amplitude and phase of the outline's 2nd-4th harmonics
    gyri: tuple[int, float, float]  # folds around the cortex, phase, depth
    contrast: tuple[float, float]  # grey, white matter offsets
    lesions: np.ndarray  # (L, 7): x, y, z, rx, ry, rz, angle


def draw_subject(rng: np.random.Generator, lesion_rate: float) -> Subject:
    n_lesions = rng.poisson(lesion_rate)
    radius = 0.55 * np.sqrt(rng.uniform(0.05, 1.0, n_lesions))
    angle = rng.uniform(0, 2 * np.pi, n_lesions)
    lesions = np.column_stack(
        [
            radius * np.cos(angle),
            radius * np.sin(angle) * 1.15,
            rng.uniform(0.25, 0.8, n_lesions),  # z of the centre: where the brain is large
            rng.uniform(0.14, 0.26, n_lesions),
            rng.uniform(0.14, 0.26, n_lesions),
            rng.uniform(0.08, 0.16, n_lesions),
            rng.uniform(0, np.pi, n_lesions),
        ]
    )
    return Subject(
        scale=rng.uniform(0.86, 0.98),
        aspect=rng.uniform(1.12, 1.25),
        tilt=rng.normal(0, 0.06),
        center=(rng.normal(0, 0.02), rng.normal(0, 0.02)),
        harmonics=np.column_stack([rng.normal(0, 0.025, 3), rng.uniform(0, 2 * np.pi, 3)]),
        gyri=(int(rng.integers(9, 15)), rng.uniform(0, 2 * np.pi), rng.uniform(0.04, 0.08)),
        contrast=(rng.normal(0, 0.03), rng.normal(0, 0.03)),
        lesions=lesions.reshape(-1, 7),
    )


def grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel-centre coordinates in [-1, 1]: x (left-right) and y (anterior-posterior), each (size, size)."""
    axis = (np.arange(size) + 0.5) / size * 2 - 1
    y, x = np.meshgrid(axis, axis, indexing="ij")
    return x, y


def rotate(x: np.ndarray, y: np.ndarray, angle: float) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(angle), np.sin(angle)
    return c * x + s * y, -s * x + c * y


def head_profile(z: float) -> float:
    """Relative head radius at height z: widest just below mid height, small at the vertex."""
    return float(np.sqrt(max(0.0, 1 - ((z - 0.42) / 0.62) ** 2)))


def lesion_cross_section(lesion: np.ndarray, z: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Boolean (S, S): the ellipsoid's cross-section at height z."""
    lx, ly, lz, rx, ry, rz, angle = lesion
    shrink = 1 - ((z - lz) / rz) ** 2
    if shrink <= 0:
        return np.zeros(x.shape, dtype=bool)
    u, v = rotate(x - lx, y - ly, angle)
    return (u / (rx * np.sqrt(shrink))) ** 2 + (v / (ry * np.sqrt(shrink))) ** 2 < 1


def render_slice(subject: Subject, z: float, size: int, min_lesion_pixels: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One slice at height z: image (size, size) in [-1, 1] and mask (size, size) in {-1, 1}."""
    fine = size * SUPERSAMPLE
    x, y = grid(fine)
    x, y = rotate(x - subject.center[0], y - subject.center[1], subject.tilt)
    # 1. head outline: elliptic radius, bent by the subject's harmonics
    radius = 0.92 * subject.scale * head_profile(z)
    theta = np.arctan2(y, x)
    bend = 1 + sum(amp * np.cos((k + 2) * theta + phase) for k, (amp, phase) in enumerate(subject.harmonics))
    q = np.sqrt(x**2 + (y / subject.aspect) ** 2) / (max(radius, 1e-6) * bend)  # 1 on the head's outline
    image = np.full(x.shape, BACKGROUND)
    image[q < 1] = SCALP
    image[q < 0.9] = SKULL
    image[q < 0.85] = CSF
    brain = q < 0.8
    b = q / 0.8  # 1 on the brain's outline
    # 2. cortex: grey band whose inner edge is folded; white matter inside
    folds, fold_phase, depth = subject.gyri
    grey_offset, white_offset = subject.contrast
    image[brain] = GREY + grey_offset
    image[brain & (b < 0.72 + depth * np.cos(folds * theta + fold_phase))] = WHITE + white_offset
    # 3. lateral ventricles, largest at mid height
    size_v = np.exp(-(((z - 0.55) / 0.14) ** 2))
    if size_v > 0.05:
        for side in (-1, 1):
            u, v = rotate(x - side * 0.1 * radius, y + 0.05 * radius, side * 0.25)
            ventricle = (u / (0.07 * radius * size_v)) ** 2 + (v / (0.3 * radius * size_v)) ** 2 < 1
            image[brain & ventricle] = CSF
    # 4. lesions: cross-sections large enough to see, inside the brain
    lesion_fine = np.zeros(x.shape, dtype=bool)
    for lesion in subject.lesions:
        section = lesion_cross_section(lesion, z, x, y) & (b < 0.95)
        if section.sum() >= min_lesion_pixels * SUPERSAMPLE**2:
            lesion_fine |= section
    image[lesion_fine] = LESION
    # partial volume: average the supersampled grid down
    image = image.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    lesion_cover = lesion_fine.reshape(size, SUPERSAMPLE, size, SUPERSAMPLE).mean(axis=(1, 3))
    head = image > BACKGROUND
    # 5. smooth texture and bias field inside the head
    texture = gaussian_filter(rng.normal(size=(size, size)), sigma=size / 16, mode="wrap")
    texture *= 0.05 / max(texture.std(), 1e-8)
    bias = 0.04 * (grid(size)[0] * rng.normal() + grid(size)[1] * rng.normal())
    image = np.where(head, image + texture + bias, BACKGROUND)
    mask = np.where(lesion_cover >= 0.5, 1.0, -1.0)
    return np.clip(image, -1, 1).astype(np.float32), mask.astype(np.float32)


def make_phantom(cfg: PhantomConfig) -> tuple[SliceDataset, SliceDataset, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Train and test splits (split by subject), each with its per-slice ``subject`` and ``z``."""
    size, n_slices = cfg.image_size, cfg.slices_per_subject
    min_pixels = cfg.min_lesion_fraction * size * size
    z_positions = (np.arange(n_slices) + 0.5) / n_slices
    zbins = np.minimum((z_positions * cfg.z_bins).astype(np.int32), cfg.z_bins - 1)
    splits = {"train": [], "test": []}
    subject_id = 0
    for domain, n_subjects, rate in (
        ("control", cfg.subjects_control, cfg.lesions_control),
        ("epilepsy", cfg.subjects_epilepsy, cfg.lesions_epilepsy),
    ):
        n_test = max(1, round(n_subjects * cfg.test_fraction)) if n_subjects > 1 else 0
        for index in range(n_subjects):
            # one stream per subject: adding subjects does not change the others
            rng = numpy_generator(sha256_seed("replicas-phantom", cfg.seed, domain, index))
            subject = draw_subject(rng, rate)
            split = "test" if index < n_test else "train"
            for z, zbin in zip(z_positions, zbins):
                image, mask = render_slice(subject, float(z), size, min_pixels, rng)
                splits[split].append((image, mask, zbin, int((mask > 0).any()), DOMAIN_MAPPING[domain], subject_id, z))
            subject_id += 1
    datasets, extras = [], []
    for split in ("train", "test"):
        rows = splits[split]
        if not rows:
            raise GensynthError(f"phantom: the {split} split is empty; use more subjects (at least 2 per domain)")
        images, masks, zbin, lesion, domain, subject, z = zip(*rows)
        datasets.append(SliceDataset(np.stack(images), np.stack(masks), np.array(zbin, np.int32), np.array(lesion, np.uint8), np.array(domain, np.uint8)))
        extras.append({"subject": np.array(subject, np.int32), "z": np.array(z, np.float32)})
    return datasets[0], datasets[1], extras[0], extras[1]
