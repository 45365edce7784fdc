"""The embedded default data: procedural UV/Vis absorbance spectra laid out as the group's corpus.

Each (treatment, sample, angle) group is measured ``replicates`` times, and every replicate has its own clean
spectrum (the sample's bands as that measurement saw them) and its own measurement noise:

    clean(λ) = f_θ · Σ_k a_k(d, s) · exp(-(λ - μ_k(d, s) - δ_k)² / 2(w_k ε_k)²)    three absorption bands
             + g_θ · β · b_s · (λ / 400 nm)^-4 + c_s + D(λ)                       scattering, offset, drift
    raw(λ)   = clean(λ) + sqrt(read² + shot² · max(clean(λ), 0)) · n(λ) + ρ · m(λ)

with d the treatment's dose and u = log1p(d) / log1p(d_max) in [0, 1]:

=============  ====================================================================================
what varies    how
=============  ====================================================================================
treatment      the bands' dose response: a_k and μ_k follow u (table below)
sample         a_k by ``sample_amplitude_sd`` (relative) and μ_k by ``sample_centre_sd_nm`` (sd), the scattering b_s by 30 %, the offset c_s by 50 %
angle θ        the path length f_θ = 1 / cos θ and the scattering g_θ = 1 + sin θ (degrees)
replicate      band centres δ_k ~ N(0, ``peak_jitter_nm``), widths ε_k = exp(N(0, ``width_jitter``)),
               scattering β = exp(N(0, ``scattering_jitter``)), drift D = Σ_{j=0..3} e_j P_j(x) with
               Legendre polynomials P_j of the grid mapped to x in [-1, 1] and e_j ~ N(0, ``drift``)
noise          white read and shot noise, n ~ N(0, 1); correlated noise of sd ρ = ``correlated_noise``,
               m white noise smoothed by a Gaussian of sd ``correlation_nm`` (unit variance, stationary)
=============  ====================================================================================

====  ==========  ============================  ================================
band  centre μ    width w                       amplitude a (dose response)
====  ==========  ============================  ================================
1     270 nm      12 nm                         0.50 + 0.60 u      (grows)
2     430 + 12u   22 nm                         0.60               (red-shifts)
3     610 nm      30 nm                         0.45 (1 - 0.6 u)   (bleaches)
====  ==========  ============================  ================================

The clean spectra (everything but the measurement noise) are written to their own tree for evaluation and the
clean-target comparison only; nothing a real user would lack is read from them in training a Noise2Noise model,
whose partners share the group but not the replicate's own variation. Every draw is seeded by SHA-256 of its
names, so a spectrum depends only on the seed and its own (treatment, sample, angle, replicate), never on how
many others are made.

Layout (the group's): ``<root>/<treatment>/<sample>/angle_<θ>/replicate_<r>.npy``; manifests keyed
by ``relative_path`` with the Noise2Noise partner (replicates paired 0-1, 2-3, ...); the first
``extra_pairing_groups`` groups paired a second time (0-2, 1-3, ...: rows that point at the same
files). The panel and the validation loss hold out whole (treatment, sample) pairs, all angles together
(leave-sample-out: a sample's angles share its bands), spread over the doses; see :func:`held_out_groups`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from numpy.polynomial import legendre

from ..errors import GensynthError
from ..io import atomic_open, atomic_path, save_json
from ..seeding import numpy_generator, sha256_seed
from .data import DOSE_FEATURES, MANIFEST_COLUMNS, dose_feature_values, save_spectrum, write_manifest
from .layout import DATA_FILES, STAGING_FILES
from .settings import PhantomConfig, Treatment  # (the config's settings; importable from here too)

# (centre nm, width nm, amplitude at u = 0, amplitude slope in u, centre shift in nm per unit u)
BANDS = ((270.0, 12.0, 0.50, 0.60, 0.0), (430.0, 22.0, 0.60, 0.0, 12.0), (610.0, 30.0, 0.45, -0.27, 0.0))
SCATTERING = 0.04  # b at 400 nm, before the sample's factor
OFFSET = 0.02  # c before the sample's factor
SAMPLE_SCATTERING_SD = 0.3  # relative
DRIFT_DEGREE = 3  # Legendre terms P0..P3: a baseline that wanders slowly over the grid


def wavelength_grid(config: PhantomConfig) -> np.ndarray:
    count = int(round((config.wavelength_max - config.wavelength_min) / config.wavelength_step)) + 1
    return config.wavelength_min + config.wavelength_step * np.arange(count, dtype=np.float64)


def group_id(treatment: str, sample: str, angle: int) -> str:
    return f"{treatment}_{sample}_angle{angle:02d}"


def relative_path(treatment: str, sample: str, angle: int, replicate: int) -> str:
    return f"{treatment}/{sample}/angle_{angle:02d}/replicate_{replicate:03d}.npy"


def clean_spectrum(grid: np.ndarray, config: PhantomConfig, treatment: Treatment, sample: str, angle: int, replicate: int) -> np.ndarray:
    """One replicate's noise-free spectrum (float64): the sample's bands as that measurement saw them (module docstring)."""
    sample_rng = numpy_generator(sha256_seed("denoise-phantom-sample", config.seed, treatment.name, sample))
    amplitude_factor = 1 + config.sample_amplitude_sd * sample_rng.standard_normal(len(BANDS))
    centre_shift = config.sample_centre_sd_nm * sample_rng.standard_normal(len(BANDS))
    scattering = SCATTERING * max(0.2, 1 + SAMPLE_SCATTERING_SD * sample_rng.standard_normal())
    offset = OFFSET * (1 + 0.5 * sample_rng.standard_normal())
    replicate_rng = numpy_generator(sha256_seed("denoise-phantom-replicate", config.seed, treatment.name, sample, angle, replicate))
    centre_jitter = config.peak_jitter_nm * replicate_rng.standard_normal(len(BANDS))
    width_factor = np.exp(config.width_jitter * replicate_rng.standard_normal(len(BANDS)))  # log-normal: a width stays positive
    scattering *= math.exp(config.scattering_jitter * replicate_rng.standard_normal())
    unit_grid = 2 * (grid - grid[0]) / (grid[-1] - grid[0]) - 1  # the Legendre polynomials' domain
    drift = legendre.legval(unit_grid, config.drift * replicate_rng.standard_normal(DRIFT_DEGREE + 1))
    u = math.log1p(treatment.dose) / math.log1p(config.doses_max) if config.doses_max > 0 else 0.0
    theta = math.radians(angle)
    bands = np.zeros_like(grid)
    for (centre, width, amplitude, slope, shift), factor, sample_shift, jitter, stretch in zip(
        BANDS, amplitude_factor, centre_shift, centre_jitter, width_factor
    ):
        position = centre + shift * u + sample_shift + jitter
        bands += factor * (amplitude + slope * u) * np.exp(-((grid - position) ** 2) / (2 * (width * stretch) ** 2))
    return bands / math.cos(theta) + (1 + math.sin(theta)) * scattering * (grid / 400.0) ** -4 + offset + drift


def correlated_unit_noise(rng: np.random.Generator, length: int, sigma_points: float) -> np.ndarray:
    """Stationary unit-variance noise correlated over neighbouring points: white noise convolved with a Gaussian of
    sd ``sigma_points`` scaled to unit norm, drawn past both ends so that the edges are like the middle."""
    radius = math.ceil(4 * sigma_points)
    lags = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (lags / sigma_points) ** 2) if radius else np.ones(1)
    return np.convolve(rng.standard_normal(length + 2 * radius), kernel / np.linalg.norm(kernel), mode="valid")


def noisy_replicate(clean: np.ndarray, config: PhantomConfig, treatment: str, sample: str, angle: int, replicate: int) -> np.ndarray:
    """One measurement of ``clean``: white read and shot noise plus correlated noise, seeded by the replicate's names."""
    rng = numpy_generator(sha256_seed("denoise-phantom-noise", config.seed, treatment, sample, angle, replicate))
    sd = np.sqrt(config.read_noise**2 + config.shot_noise**2 * np.maximum(clean, 0.0))
    white = sd * rng.standard_normal(clean.shape)
    return clean + white + config.correlated_noise * correlated_unit_noise(rng, len(clean), config.correlation_nm / config.wavelength_step)


def manifest_row(treatment: str, sample: str, angle: int, replicate: int, partner: int) -> dict[str, Any]:
    """One manifest row: a replicate's file and its Noise2Noise partner's."""
    return {
        "relative_path": relative_path(treatment, sample, angle, replicate),
        "treatment": treatment,
        "sample": sample,
        "angle": angle,
        "replicate": replicate,
        "group_id": group_id(treatment, sample, angle),
        "n2n_partner": relative_path(treatment, sample, angle, partner),
    }


def corpus_rows(config: PhantomConfig, staging: bool = False) -> pd.DataFrame:
    """The manifest rows of the corpus (or of the staging corpus): one per file, partner paired 0-1, 2-3, ...,
    then a second pairing (r with r + 2, cyclic) of the first ``extra_pairing_groups`` groups (the main corpus only)."""
    rows, extra = [], []
    groups = [(t, s, a) for t in config.treatments for s in (t.staging_samples if staging else t.samples) for a in config.angles]
    for index, (treatment, sample, angle) in enumerate(groups):
        rows += [manifest_row(treatment.name, sample, angle, r, r ^ 1) for r in range(config.replicates)]  # 0-1, 2-3, ...
        if not staging and index < config.extra_pairing_groups:  # 0-2, 1-3, ..., cyclic
            extra += [manifest_row(treatment.name, sample, angle, r, (r + 2) % config.replicates) for r in range(config.replicates)]
    return pd.DataFrame(rows + extra, columns=MANIFEST_COLUMNS)


@dataclass(frozen=True)
class HeldOut:
    """Whole samples kept out of training (a sample's spectra at every angle share its bands): the panel's and the
    validation loss's groups, and the held-out samples' other groups, in neither (they stay in manifest_full)."""

    panel_samples: list[str]  # "treatment/sample"
    val_samples: list[str]
    panel_groups: list[str]
    val_groups: list[str]
    excluded_groups: list[str]


def spread_order(count: int) -> list[int]:
    """0 .. count - 1 so that every prefix spreads over the range: both ends first, then each next index the
    farthest from those taken (the lower on a tie)."""
    order = [0]
    while len(order) < count:
        order.append(max(range(count), key=lambda i: (min(abs(i - j) for j in order), -i)))
    return order


def held_out_groups(config: PhantomConfig, groups: pd.DataFrame) -> HeldOut:
    """Whole (treatment, sample) pairs, round-robin over the treatments (in dose order from both ends inward, so
    that the first few span the doses), each treatment's samples in a seeded order: the panel's samples until they
    hold ``panel_groups`` groups, then the validation loss's until ``val_groups`` (every sample has one group per angle)."""
    sample_groups = {pair: list(ids) for pair, ids in groups.drop_duplicates("group_id").groupby(["treatment", "sample"], sort=False)["group_id"]}
    samples_of: dict[str, list[str]] = {}
    for treatment, sample in sample_groups:
        samples_of.setdefault(treatment, []).append(sample)
    dose = {t.name: t.dose for t in config.treatments}
    by_dose = sorted(samples_of, key=dose.__getitem__)
    per_treatment = []
    for treatment in (by_dose[i] for i in spread_order(len(by_dose))):
        samples = sorted(samples_of[treatment])
        order = numpy_generator(sha256_seed("denoise-phantom-split", config.seed, treatment)).permutation(len(samples))
        per_treatment.append([(treatment, samples[i]) for i in order])
    round_robin = [pairs[i] for i in range(max(map(len, per_treatment))) for pairs in per_treatment if i < len(pairs)]
    angles = len(config.angles)
    panel_count, val_count = -(-config.panel_groups // angles), -(-config.val_groups // angles)  # whole samples: the ceiling
    if panel_count + val_count >= len(round_robin):
        raise GensynthError(
            f"phantom: panel_groups {config.panel_groups} and val_groups {config.val_groups} hold out {panel_count} + {val_count} whole samples "
            f"({angles} angle(s) each) of the {len(round_robin)}; expected fewer, so that training keeps a sample"
        )
    panel_pairs, val_pairs = round_robin[:panel_count], round_robin[panel_count : panel_count + val_count]
    panel_all = [group for pair in panel_pairs for group in sample_groups[pair]]
    val_all = [group for pair in val_pairs for group in sample_groups[pair]]
    return HeldOut(
        panel_samples=[f"{treatment}/{sample}" for treatment, sample in panel_pairs],
        val_samples=[f"{treatment}/{sample}" for treatment, sample in val_pairs],
        panel_groups=panel_all[: config.panel_groups],
        val_groups=val_all[: config.val_groups],
        excluded_groups=panel_all[config.panel_groups :] + val_all[config.val_groups :],
    )


@dataclass(frozen=True)
class PhantomPaths:
    """Where :func:`write_phantom` and :func:`write_staging` put each file (layout.py's names under one folder)."""

    root: Path  # raw spectra tree
    clean: Path  # clean spectra tree, same relative paths
    grid: Path
    manifest_full: Path
    manifest_train: Path
    manifest_val: Path
    panel: Path
    dose_features: Path
    dose_stats: Path
    summary: Path
    staging_root: Path
    staging_manifest: Path
    staging_summary: Path

    @classmethod
    def under(cls, folder: str | Path) -> PhantomPaths:
        folder = Path(folder)
        return cls(
            **{name: folder / relative for name, relative in DATA_FILES.items()},
            **{f"staging_{name}": folder / relative for name, relative in STAGING_FILES.items()},
        )


def write_tree(config: PhantomConfig, grid: np.ndarray, rows: pd.DataFrame, root: Path, clean_root: Path | None) -> None:
    """Every file of ``rows`` (each once) under ``root``, and its clean spectrum under ``clean_root``."""
    treatments = {t.name: t for t in config.treatments}
    files = rows.drop_duplicates("relative_path")[["relative_path", "treatment", "sample", "angle", "replicate"]]
    for relative, treatment, sample, angle, replicate in files.itertuples(index=False):
        clean = clean_spectrum(grid, config, treatments[treatment], sample, int(angle), int(replicate))
        save_spectrum(root / relative, noisy_replicate(clean, config, treatment, sample, int(angle), int(replicate)))
        if clean_root is not None:
            save_spectrum(clean_root / relative, clean)


def write_phantom(config: PhantomConfig, paths: PhantomPaths) -> dict[str, Any]:
    """Write the corpus, its manifests and dose metadata; returns the counts (also in ``paths.summary``)."""
    grid = wavelength_grid(config)
    full = corpus_rows(config)
    held_out = held_out_groups(config, full)
    write_tree(config, grid, full, paths.root, paths.clean)
    with atomic_path(paths.grid) as tmp, open(tmp, "wb") as handle:
        np.save(handle, grid)

    in_panel, in_val = full["group_id"].isin(held_out.panel_groups), full["group_id"].isin(held_out.val_groups)
    training = ~(full["treatment"] + "/" + full["sample"]).isin(held_out.panel_samples + held_out.val_samples)
    write_manifest(paths.manifest_full, full)
    write_manifest(paths.manifest_train, full[training])
    write_manifest(paths.manifest_val, full[in_val].drop_duplicates("relative_path"))
    write_manifest(paths.panel, full[in_panel].drop_duplicates("relative_path"))

    features = pd.DataFrame([{"treatment": t.name, **dose_feature_values(t.dose)} for t in config.treatments])
    with atomic_open(paths.dose_features, "w", newline="") as handle:
        features.to_csv(handle, index=False, float_format="%.10g")
    save_json(
        paths.dose_stats,
        {
            "features": list(DOSE_FEATURES),
            "mean": {name: float(features[name].mean()) for name in DOSE_FEATURES},
            "std": {name: float(features[name].std(ddof=0)) or 1.0 for name in DOSE_FEATURES},  # a constant feature is left unscaled
        },
    )

    counts = {
        "wavelengths": len(grid),
        "groups": int(full["group_id"].nunique()),
        "unique_spectra": int(full["relative_path"].nunique()),
        "manifest_full_rows": len(full),
        "manifest_train_rows": int(training.sum()),
        "manifest_val_rows": int(full[in_val]["relative_path"].nunique()),
        "panel_rows": int(full[in_panel]["relative_path"].nunique()),
        "panel_groups": held_out.panel_groups,
        "val_groups": held_out.val_groups,
        "panel_samples": held_out.panel_samples,
        "val_samples": held_out.val_samples,
        "excluded_groups": held_out.excluded_groups,
    }
    return counts


def write_staging(config: PhantomConfig, paths: PhantomPaths) -> dict[str, Any]:
    """The staging corpus (every treatment with its staging samples) and its manifest; returns the counts."""
    staging = corpus_rows(config, staging=True)
    write_tree(config, wavelength_grid(config), staging, paths.staging_root, None)
    write_manifest(paths.staging_manifest, staging)
    return {"wavelengths": len(wavelength_grid(config)), "groups": int(staging["group_id"].nunique()), "staging_rows": len(staging)}
