"""The embedded default data: procedural UV/Vis absorbance spectra laid out as the group's corpus.

Each (treatment, sample, angle) group is one clean spectrum measured ``replicates`` times:

    clean(λ) = f_θ · Σ_k a_k(d, s) · exp(-(λ - μ_k(d, s))² / 2w_k²)      three absorption bands
             + g_θ · b_s · (λ / 400 nm)^-4 + c_s                            Rayleigh-like scattering, offset
    raw(λ)   = clean(λ) + sqrt(read² + shot² · max(clean(λ), 0)) · n(λ)     read and shot noise, n ~ N(0, 1)

with d the treatment's dose, u = log1p(d) / log1p(d_max) in [0, 1], and the sample s perturbing every
amplitude, position and the scattering by a few per cent:

====  ==========  ============================  ================================
band  centre μ    width w                       amplitude a (dose response)
====  ==========  ============================  ================================
1     270 nm      12 nm                         0.50 + 0.60 u      (grows)
2     430 + 12u   22 nm                         0.60               (red-shifts)
3     610 nm      30 nm                         0.45 (1 - 0.6 u)   (bleaches)
====  ==========  ============================  ================================

The angle θ (degrees) lengthens the optical path, f_θ = 1 / cos θ, and raises the scattering,
g_θ = 1 + sin θ. The clean spectra are written to their own tree for evaluation and the
clean-target comparison only; nothing a real user would lack is read from them in training
a Noise2Noise model. Every draw is seeded by SHA-256 of its names, so a spectrum depends only on
the seed and its own (treatment, sample, angle, replicate), never on how many others are made.

Layout (the group's): ``<root>/<treatment>/<sample>/angle_<θ>/replicate_<r>.npy``; manifests keyed
by ``relative_path`` with the Noise2Noise partner (replicates paired 0-1, 2-3, ...); the first
``extra_pairing_groups`` groups paired a second time (0-2, 1-3, ...: rows that point at the same
files); whole groups held out for the panel and for the validation loss, spread over the treatments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

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
SAMPLE_AMPLITUDE_SD = 0.04  # relative
SAMPLE_CENTRE_SD_NM = 0.5
SAMPLE_SCATTERING_SD = 0.3  # relative


def wavelength_grid(config: PhantomConfig) -> np.ndarray:
    count = int(round((config.wavelength_max - config.wavelength_min) / config.wavelength_step)) + 1
    return config.wavelength_min + config.wavelength_step * np.arange(count, dtype=np.float64)


def group_id(treatment: str, sample: str, angle: int) -> str:
    return f"{treatment}_{sample}_angle{angle:02d}"


def relative_path(treatment: str, sample: str, angle: int, replicate: int) -> str:
    return f"{treatment}/{sample}/angle_{angle:02d}/replicate_{replicate:03d}.npy"


def clean_spectrum(grid: np.ndarray, config: PhantomConfig, treatment: Treatment, sample: str, angle: int) -> np.ndarray:
    """The group's noise-free spectrum (float64), from the table in the module docstring."""
    rng = numpy_generator(sha256_seed("denoise-phantom-sample", config.seed, treatment.name, sample))
    amplitude_factor = 1 + SAMPLE_AMPLITUDE_SD * rng.standard_normal(len(BANDS))
    centre_shift = SAMPLE_CENTRE_SD_NM * rng.standard_normal(len(BANDS))
    scattering = SCATTERING * max(0.2, 1 + SAMPLE_SCATTERING_SD * rng.standard_normal())
    offset = OFFSET * (1 + 0.5 * rng.standard_normal())
    u = math.log1p(treatment.dose) / math.log1p(config.doses_max) if config.doses_max > 0 else 0.0
    theta = math.radians(angle)
    bands = np.zeros_like(grid)
    for (centre, width, amplitude, slope, shift), factor, jitter in zip(BANDS, amplitude_factor, centre_shift):
        bands += factor * (amplitude + slope * u) * np.exp(-((grid - (centre + shift * u + jitter)) ** 2) / (2 * width**2))
    return bands / math.cos(theta) + (1 + math.sin(theta)) * scattering * (grid / 400.0) ** -4 + offset


def noisy_replicate(clean: np.ndarray, config: PhantomConfig, treatment: str, sample: str, angle: int, replicate: int) -> np.ndarray:
    """One measurement of ``clean``: heteroscedastic read and shot noise, seeded by the replicate's names."""
    rng = numpy_generator(sha256_seed("denoise-phantom-noise", config.seed, treatment, sample, angle, replicate))
    sd = np.sqrt(config.read_noise**2 + config.shot_noise**2 * np.maximum(clean, 0.0))
    return clean + sd * rng.standard_normal(clean.shape)


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


def held_out_groups(config: PhantomConfig, groups: pd.DataFrame) -> tuple[list[str], list[str]]:
    """Panel and validation groups: round-robin over the treatments, each treatment's groups in a seeded order,
    so that the panel covers as many treatments (doses) as it has groups."""
    per_treatment = {}
    for treatment, frame in groups.groupby("treatment", sort=False):
        ids = sorted(frame["group_id"].unique())
        order = numpy_generator(sha256_seed("denoise-phantom-split", config.seed, treatment)).permutation(len(ids))
        per_treatment[treatment] = [ids[i] for i in order]
    round_robin = [ids[i] for i in range(max(map(len, per_treatment.values()))) for ids in per_treatment.values() if i < len(ids)]
    needed = config.panel_groups + config.val_groups
    if needed >= len(round_robin):
        raise GensynthError(
            f"phantom: {config.panel_groups} panel and {config.val_groups} validation groups leave no training group of the {len(round_robin)} groups"
        )
    return round_robin[: config.panel_groups], round_robin[config.panel_groups : needed]


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
    for (treatment, sample, angle), frame in rows.drop_duplicates("relative_path").groupby(["treatment", "sample", "angle"], sort=False):
        clean = clean_spectrum(grid, config, treatments[treatment], sample, angle)
        for relative, replicate in zip(frame["relative_path"], frame["replicate"]):
            save_spectrum(root / relative, noisy_replicate(clean, config, treatment, sample, angle, int(replicate)))
            if clean_root is not None:
                save_spectrum(clean_root / relative, clean)


def write_phantom(config: PhantomConfig, paths: PhantomPaths) -> dict[str, Any]:
    """Write the corpus, its manifests and dose metadata; returns the counts (also in ``paths.summary``)."""
    grid = wavelength_grid(config)
    full = corpus_rows(config)
    panel_ids, val_ids = held_out_groups(config, full)
    write_tree(config, grid, full, paths.root, paths.clean)
    with atomic_path(paths.grid) as tmp, open(tmp, "wb") as handle:
        np.save(handle, grid)

    in_panel, in_val = full["group_id"].isin(panel_ids), full["group_id"].isin(val_ids)
    write_manifest(paths.manifest_full, full)
    write_manifest(paths.manifest_train, full[~in_panel & ~in_val])
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
        "manifest_train_rows": int((~in_panel & ~in_val).sum()),
        "manifest_val_rows": int(full[in_val]["relative_path"].nunique()),
        "panel_rows": int(full[in_panel]["relative_path"].nunique()),
        "panel_groups": panel_ids,
        "val_groups": val_ids,
    }
    return counts


def write_staging(config: PhantomConfig, paths: PhantomPaths) -> dict[str, Any]:
    """The staging corpus (every treatment with its staging samples) and its manifest; returns the counts."""
    staging = corpus_rows(config, staging=True)
    write_tree(config, wavelength_grid(config), staging, paths.staging_root, None)
    write_manifest(paths.staging_manifest, staging)
    return {"wavelengths": len(wavelength_grid(config)), "groups": int(staging["group_id"].nunique()), "staging_rows": len(staging)}
