"""Gate 4, the downstream proxy: do the analyses a spectroscopist runs next come out better on denoised spectra?

Four checks on the panel, each the denoised spectra's statistic over the raw spectra's (per group g of
replicates, treatment t, ROI windows w; features as in :mod:`.quality`), so that the raw spectra score 1 and
fail every check whose threshold asks for an improvement:

1. replicate variance: mean over groups and wavelengths of the variance across a group's replicates; at most
   ``replicate_variance_max_ratio`` of the raw spectra's (noise removed).
2. treatment separability: the F statistic of the treatments over the spectra,
   [Σ_t n_t |μ_t - μ|² / (T - 1)] / [Σ_i |x_i - μ_t(i)|² / (N - T)]; at least ``separability_min_ratio`` times
   the raw spectra's.
3. dose monotonicity: each spectrum's ratio band_area(numerator) / band_area(denominator) of the
   ``dose_response`` windows (areas above the chord: the scattering baseline removed, the angle's path length
   cancels in the ratio) against its treatment's dose; the share of its variance that the best monotone
   function of the dose (isotonic regression, either direction) leaves unexplained, at most
   ``dose_residual_max_ratio`` of the raw spectra's. Per spectrum, not per group mean: a group mean already
   averages the noise away and is as monotone raw as denoised.
4. peak stability: the standard deviation across a group's replicates of each window's peak position (centroid),
   averaged over groups and windows (nm); at most ``peak_stability_max_ratio`` of the raw spectra's.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

from ..errors import GensynthError
from .data import line_of, read_csv
from .quality import RoiConfig, roi_features
from .settings import DownstreamThresholds  # (the config's settings; importable from here too)


def treatment_doses(metadata: Path, column: str) -> dict[str, float]:
    """Each treatment's scalar dose: ``column`` of dose_features.csv."""
    table = read_csv(metadata, "dose features table")
    if "treatment" not in table.columns or column not in table.columns:
        raise GensynthError(f"{metadata}: expected columns treatment and {column} (the dose of the monotonicity check)")
    doses = pd.to_numeric(table[column], errors="coerce")
    if not np.isfinite(doses.to_numpy(dtype=np.float64)).all():
        index = int(np.flatnonzero(~np.isfinite(doses.to_numpy(dtype=np.float64)))[0])
        raise GensynthError(f"{metadata}: line {line_of(index)}: {column} {table[column].iloc[index]!r} is not a finite number")
    return dict(zip(table["treatment"], doses.astype(float)))


def spectrum_doses(metadata: Path, column: str, treatments: pd.Series, manifest: Path | str) -> np.ndarray:
    """Each spectrum's dose, from its treatment's row of dose_features.csv; a treatment without one is an error."""
    doses = treatment_doses(metadata, column)
    missing = sorted(set(treatments) - set(doses))
    if missing:
        raise GensynthError(f"{metadata}: no dose for treatment(s) {', '.join(missing)} of {manifest}")
    return np.array([doses[t] for t in treatments])


def replicate_variance(spectra: np.ndarray, groups: np.ndarray) -> float:
    return float(np.mean([spectra[groups == g].var(axis=0, ddof=1).mean() for g in np.unique(groups)]))


def separability(spectra: np.ndarray, treatments: np.ndarray) -> float:
    names = np.unique(treatments)
    overall = spectra.mean(axis=0)
    between = within = 0.0
    for name in names:
        members = spectra[treatments == name]
        centre = members.mean(axis=0)
        between += len(members) * float(np.sum((centre - overall) ** 2))
        within += float(np.sum((members - centre) ** 2))
    return (between / (len(names) - 1)) / max(within / (len(spectra) - len(names)), 1e-300)


def dose_residual(spectra: np.ndarray, grid: np.ndarray, roi: RoiConfig, doses: np.ndarray) -> float:
    """The share of the variance of each spectrum's dose_response band ratio that the best monotone function of the
    dose (isotonic regression, increasing or decreasing) leaves unexplained: 0 for a noise-free monotone response."""
    windows = {w.name: w for w in roi.windows}
    numerator, denominator = (roi_features(spectra, grid, windows[name]).band_area for name in roi.dose_response)
    ratio = numerator / np.where(np.abs(denominator) > 1e-12, denominator, 1e-12)
    total = float(np.sum((ratio - ratio.mean()) ** 2))
    if total == 0.0:
        return 0.0
    residuals = [np.sum((ratio - IsotonicRegression(increasing=up).fit_transform(doses, ratio)) ** 2) for up in (True, False)]
    return float(min(residuals)) / total


def peak_stability(spectra: np.ndarray, grid: np.ndarray, roi: RoiConfig, groups: np.ndarray) -> float:
    spreads = []
    for window in roi.windows:
        peaks = roi_features(spectra, grid, window).peak_nm
        spreads += [peaks[groups == g].std(ddof=1) for g in np.unique(groups)]
    return float(np.mean(spreads))


def relative_to_raw(denoised: float, raw: float) -> float:
    """denoised / raw, with 0 / 0 = 1 (no change) and x / 0 = inf."""
    if raw == 0.0:
        return 1.0 if denoised == 0.0 else float("inf")
    return denoised / raw


def check_panel(groups: np.ndarray, treatments: np.ndarray, doses: np.ndarray, where: str) -> None:
    """What the four checks need of a panel: replicates in each group, two treatments, three groups of two doses."""
    names, counts = np.unique(groups, return_counts=True)
    if counts.min() < 2:
        raise GensynthError(f"{where}: group {names[np.argmin(counts)]!r} has one spectrum; the downstream proxy needs replicates")
    if len(np.unique(treatments)) < 2:
        raise GensynthError(f"{where}: one treatment; treatment separability needs at least 2")
    if len(names) < 3 or len(np.unique(doses)) < 2:
        raise GensynthError(f"{where}: {len(names)} groups with {len(np.unique(doses))} distinct doses; dose monotonicity needs at least 3 groups and 2 doses")


def downstream_metrics(
    denoised: np.ndarray,
    raw: np.ndarray,
    grid: np.ndarray,
    roi: RoiConfig,
    groups: np.ndarray,
    treatments: np.ndarray,
    doses: np.ndarray,
    thresholds: DownstreamThresholds,
    where: str,
) -> dict[str, Any]:
    """The four checks (module doc) with their values, the raw spectra's, thresholds and verdicts; "passed": all four."""
    check_panel(groups, treatments, doses, where)
    statistics = {
        "replicate_variance": lambda x: replicate_variance(x, groups),
        "treatment_separability": lambda x: separability(x, treatments),
        "dose_monotonicity": lambda x: dose_residual(x, grid, roi, doses),
        "peak_stability": lambda x: peak_stability(x, grid, roi, groups),
    }
    rules = {
        "replicate_variance": ("<=", thresholds.replicate_variance_max_ratio),
        "treatment_separability": (">=", thresholds.separability_min_ratio),
        "dose_monotonicity": ("<=", thresholds.dose_residual_max_ratio),
        "peak_stability": ("<=", thresholds.peak_stability_max_ratio),
    }
    checks = {}
    for name, statistic in statistics.items():
        values = {"denoised": statistic(denoised), "raw": statistic(raw)}
        rule, threshold = rules[name]
        checks[name] = {**values, "value": relative_to_raw(values["denoised"], values["raw"]), "rule": rule, "threshold": threshold}
    for check in checks.values():
        check["passed"] = bool(check["value"] <= check["threshold"] if check["rule"] == "<=" else check["value"] >= check["threshold"])
    return {
        "checks": checks,
        "passed": all(c["passed"] for c in checks.values()),
        "thresholds": asdict(thresholds),
        "n_spectra": len(groups),
        "n_groups": len(np.unique(groups)),
    }
