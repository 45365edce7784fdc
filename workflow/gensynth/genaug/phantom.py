"""A procedural multimodal wound phantom: per patient and visit, two cameras' co-registered images.

The group's classifier sees four modalities of one wound at one visit: ``depth_rgb`` and
``depth_map`` from a depth camera, ``thermal_rgb`` and ``thermal_map`` from a thermal camera; each
camera's RGB view is registered to its own map, and the two cameras look at the wound from slightly
different positions. Each visit has a healing phase: I (inflammatory), P (proliferative) or R
(remodeling).

A patient heals along a latent progress ``h`` in [0, 1] that grows from visit to visit; the
clinician's phase is ``h`` cut at 0.36 and 0.68 after label noise (sd 0.06), so neighbouring phases
overlap. Everything visible follows ``h`` plus the patient's own variation:

1. wound size: radius ``R0 (1 - 0.7 h)`` with an irregular outline (2nd-4th harmonics);
2. redness: peri-wound erythema ``clip(1 - 1.4 h)``, strongest in I;
3. wound bed: yellow slough (``clip(1 - 2.2 h)``), granulation tissue whose bumpy texture peaks in P
   (``exp(-((h - 0.5) / 0.2)^2)``), pale pink epithelium in R (``clip((h - 0.55) / 0.35)``);
4. temperature: inflammation warms the wound and its rim by up to ~3 degrees C (``1 - h``);
5. depth: a cavity ``D0 (1 - h)^1.2`` deep on a curved limb surface.

Scenes are drawn on a 2x supersampled grid and averaged down. The thermal camera is offset
(shift and scale), blurrier and colder in white balance; its map is blurred further (thermal
optics). Values are in [0, 1]: the maps are temperature scaled over 28-40 degrees C and distance
scaled over the depth camera's range.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter

from ..seeding import numpy_generator, sha256_seed
from .settings import PhantomConfig

SUPERSAMPLE = 2
PHASE_CUTS = (0.36, 0.68)  # progress h at the I/P and P/R boundaries
LABEL_NOISE = 0.06  # sd of the clinician's reading of h
SKIN_LIGHT, SKIN_DARK = np.array([0.93, 0.76, 0.65]), np.array([0.45, 0.30, 0.22])
ERYTHEMA = np.array([0.80, 0.22, 0.20])
SLOUGH = np.array([0.85, 0.76, 0.36])
GRANULATION = np.array([0.72, 0.10, 0.14])
EPITHELIUM = np.array([0.93, 0.64, 0.62])
TEMPERATURE_RANGE = (28.0, 40.0)  # degrees C mapped to [0, 1] in the thermal map
# White balance of each camera's RGB sensor.
CAMERA_TINT = {"depth": np.array([1.03, 1.0, 0.95]), "thermal": np.array([0.95, 1.0, 1.06])}


@dataclass(frozen=True)
class Patient:
    skin: np.ndarray  # (3,) RGB of the skin
    centre: tuple[float, float]  # of the wound, in image units ([-1, 1] across)
    radius: float  # R0, the wound's radius before healing
    harmonics: np.ndarray  # (3, 2): amplitude and phase of the outline's 2nd-4th harmonics
    depth: float  # D0, the cavity's depth before healing
    curvature: float  # of the limb surface (depth map)
    skin_temperature: float  # degrees C
    progress: np.ndarray  # (visits,) healing progress h per visit


def draw_patient(rng: np.random.Generator, visits: int) -> Patient:
    tone = rng.beta(2.0, 2.5)
    start = rng.uniform(0.0, 0.55)
    progress = np.clip(start + np.concatenate([[0.0], np.cumsum(rng.uniform(0.12, 0.35, visits - 1))]), 0, 1)
    return Patient(
        skin=(1 - tone) * SKIN_LIGHT + tone * SKIN_DARK,
        centre=(rng.uniform(-0.15, 0.15), rng.uniform(-0.15, 0.15)),
        radius=rng.uniform(0.45, 0.7),
        harmonics=np.column_stack([rng.uniform(0, 0.14, 3), rng.uniform(0, 2 * np.pi, 3)]),
        depth=rng.uniform(0.12, 0.3),
        curvature=rng.uniform(0.05, 0.2),
        skin_temperature=rng.normal(33.0, 0.7),
        progress=progress,
    )


def phase_of(progress: float, rng: np.random.Generator) -> int:
    """The clinician's phase (index into PHASES) of a visit: h read with noise, cut at PHASE_CUTS."""
    return int(np.digitize(progress + rng.normal(0, LABEL_NOISE), PHASE_CUTS))


def smooth_noise(rng: np.random.Generator, side: int, sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise of unit standard deviation, (side, side)."""
    field = gaussian_filter(rng.standard_normal((side, side)), sigma, mode="wrap")
    return field / max(field.std(), 1e-12)


def downsample(image: np.ndarray) -> np.ndarray:
    """(..., S*k, S*k) -> (..., S, S) by averaging k x k blocks (partial-volume borders)."""
    *lead, height, width = image.shape
    k = SUPERSAMPLE
    return image.reshape(*lead, height // k, k, width // k, k).mean(axis=(-3, -1))


def render_visit(patient: Patient, h: float, size: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """The four modalities of one visit: depth_rgb, thermal_rgb (3, S, S) and depth_map, thermal_map (1, S, S)."""
    side = size * SUPERSAMPLE
    # Tissue fields shared by both cameras (drawn on the depth camera's grid).
    slough_patches = smooth_noise(rng, side, side / 10)
    granules = smooth_noise(rng, side, 0.6 * SUPERSAMPLE)
    skin_texture = smooth_noise(rng, side, side / 6)
    redness = np.clip(1 - 1.4 * h + rng.normal(0, 0.08), 0, 1)
    granulation = float(np.exp(-(((h - 0.5) / 0.2) ** 2)))
    slough = np.clip(1 - 2.2 * h, 0, 1)
    epithelium = np.clip((h - 0.55) / 0.35, 0, 1)
    cavity = patient.depth * (1 - h) ** 1.2
    inflammation = np.clip(1 - h + rng.normal(0, 0.08), 0, 1)
    images = {}
    for camera, (shift, scale, blur) in {"depth": ((0.0, 0.0), 1.0, 0.0), "thermal": ((0.07, -0.05), 1.06, 0.9)}.items():
        # 1. the camera's view of the wound: signed outline distance d (< 0 inside), rho/r(theta) - 1
        axis = (np.arange(side) + 0.5) / side * 2 - 1
        y, x = np.meshgrid(axis, axis, indexing="ij")  # (side, side)
        x, y = (x - shift[0]) / scale - patient.centre[0], (y - shift[1]) / scale - patient.centre[1]
        rho, theta = np.hypot(x, y), np.arctan2(y, x)
        amplitude, phase = patient.harmonics[:, 0], patient.harmonics[:, 1]
        outline = 1 + (amplitude[:, None, None] * np.cos(np.arange(2, 5)[:, None, None] * theta + phase[:, None, None])).sum(axis=0)
        radius = patient.radius * (1 - 0.7 * h) * outline  # (side, side)
        d = rho / radius - 1
        inside = 1 / (1 + np.exp(d / 0.04))  # soft wound mask
        # 2. skin with erythema around the wound
        rim = np.exp(-np.maximum(d, 0) / 0.45) * (1 - inside)
        skin = patient.skin[:, None, None] * (1 + 0.04 * skin_texture)
        skin = skin + (ERYTHEMA - patient.skin)[:, None, None] * (0.9 * redness * rim)
        # 3. wound bed: slough in patches, bumpy granulation, pale epithelium
        slough_mask = slough * (slough_patches > -0.3)
        bed = GRANULATION[:, None, None] * (1 + 0.3 * granulation * np.clip(granules, -2, 2))
        bed = bed + (SLOUGH - GRANULATION)[:, None, None] * slough_mask
        bed = bed + (EPITHELIUM[:, None, None] - bed) * epithelium
        rgb = skin * (1 - inside) + bed * inside
        rgb = rgb * CAMERA_TINT[camera][:, None, None] * rng.uniform(0.9, 1.1)  # exposure
        if blur:
            rgb = gaussian_filter(rgb, (0, blur * SUPERSAMPLE, blur * SUPERSAMPLE))
        rgb = downsample(rgb) + rng.normal(0, 0.015, (3, size, size))
        images[f"{camera}_rgb"] = np.clip(rgb, 0, 1)
        if camera == "depth":
            # 5. distance: curved limb surface, cavity inside the wound, slough roughness
            surface = 0.45 + patient.curvature * x**2 + 0.05 * y
            depth = surface + cavity * inside * np.clip(1 - (rho / radius) ** 2, 0, 1) + 0.01 * slough_mask * slough_patches
            depth = downsample(depth)[None] + rng.normal(0, 0.006, (1, size, size))
            images["depth_map"] = np.clip(depth, 0, 1)
        else:
            # 4. temperature: skin, a warm inflamed wound and rim, cooling towards the image border (limb)
            celsius = patient.skin_temperature - 1.2 * rho**2 + 3.0 * inflammation * (0.6 * inside + 0.8 * rim) + 0.4 * skin_texture * 0.3
            celsius = gaussian_filter(celsius, 1.2 * SUPERSAMPLE)
            low, high = TEMPERATURE_RANGE
            thermal = downsample((celsius - low) / (high - low))[None] + rng.normal(0, 0.01, (1, size, size))
            images["thermal_map"] = np.clip(thermal, 0, 1)
    return {name: image.astype(np.float32) for name, image in images.items()}


def make_phantom(config: PhantomConfig) -> dict[str, np.ndarray]:
    """All visits: the four modalities' images, ``phase`` (index into PHASES), ``patient`` ids and ``visit`` numbers.

    Patient ``p`` draws from its own generator (``sha256_seed("genaug-phantom", seed, p)``), so adding
    patients leaves the others unchanged.
    """
    rows: list[dict[str, np.ndarray]] = []
    phases, patients, visits = [], [], []
    for index in range(config.patients):
        rng = numpy_generator(sha256_seed("genaug-phantom", config.seed, index))
        patient = draw_patient(rng, config.visits)
        for visit, h in enumerate(patient.progress):
            phases.append(phase_of(float(h), rng))
            rows.append(render_visit(patient, float(h), config.image_size, rng))
            patients.append(f"P{index:03d}")
            visits.append(visit + 1)
    images = {name: np.stack([row[name] for row in rows]) for name in rows[0]}
    return {**images, "phase": np.array(phases, dtype=np.int64), "patient": np.array(patients), "visit": np.array(visits, dtype=np.int64)}
