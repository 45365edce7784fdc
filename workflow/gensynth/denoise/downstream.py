"""Gate 4, the downstream proxy: would the analyses a spectroscopist runs next come out as well on denoised spectra?

Four checks on the panel, each computed on the denoised and on the raw spectra (per group g of replicates,
treatment t, ROI windows w; features as in :mod:`.quality`):

1. replicate variance: mean over groups and wavelengths of the variance across a group's replicates; the
   value is denoised / raw, which must not exceed ``replicate_variance_max_ratio`` (noise removed).
2. treatment separability: the F statistic of the treatments over the spectra,
   [Σ_t n_t |μ_t - μ|² / (T - 1)] / [Σ_i |x_i - μ_t(i)|² / (N - T)]; the value is denoised / raw, at least
   ``separability_min_ratio`` (treatments no harder to tell apart).
3. dose monotonicity: Spearman's rank correlation between the treatment's dose and the group-mean ratio
   band_area(numerator) / band_area(denominator) of the ``dose_response`` windows (areas above the chord: the
   scattering baseline removed, the angle's path length cancels in the ratio);
   the value is |rho| of the denoised spectra, at least ``dose_monotonicity_min_spearman``.
4. peak stability: the standard deviation across a group's replicates of each window's peak position (centroid),
   averaged over groups and windows (nm); at most ``peak_stability_max_nm``.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

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


def dose_monotonicity(spectra: np.ndarray, grid: np.ndarray, roi: RoiConfig, groups: np.ndarray, doses: np.ndarray) -> float:
    windows = {w.name: w for w in roi.windows}
    numerator, denominator = (roi_features(spectra, grid, windows[name]).band_area for name in roi.dose_response)
    ratio = numerator / np.where(np.abs(denominator) > 1e-12, denominator, 1e-12)
    names = np.unique(groups)
    group_ratio = [ratio[groups == g].mean() for g in names]
    group_dose = [doses[groups == g][0] for g in names]
    rho = spearmanr(group_dose, group_ratio).statistic
    return float(abs(rho)) if np.isfinite(rho) else 0.0


def peak_stability(spectra: np.ndarray, grid: np.ndarray, roi: RoiConfig, groups: np.ndarray) -> float:
    spreads = []
    for window in roi.windows:
        peaks = roi_features(spectra, grid, window).peak_nm
        spreads += [peaks[groups == g].std(ddof=1) for g in np.unique(groups)]
    return float(np.mean(spreads))


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
    variance = {"denoised": replicate_variance(denoised, groups), "raw": replicate_variance(raw, groups)}
    separation = {"denoised": separability(denoised, treatments), "raw": separability(raw, treatments)}
    monotonic = {name: dose_monotonicity(x, grid, roi, groups, doses) for name, x in (("denoised", denoised), ("raw", raw))}
    stability = {name: peak_stability(x, grid, roi, groups) for name, x in (("denoised", denoised), ("raw", raw))}
    checks = {
        "replicate_variance": {
            **variance,
            "value": variance["denoised"] / max(variance["raw"], 1e-300),
            "rule": "<=",
            "threshold": thresholds.replicate_variance_max_ratio,
        },
        "treatment_separability": {
            **separation,
            "value": separation["denoised"] / max(separation["raw"], 1e-300),
            "rule": ">=",
            "threshold": thresholds.separability_min_ratio,
        },
        "dose_monotonicity": {**monotonic, "value": monotonic["denoised"], "rule": ">=", "threshold": thresholds.dose_monotonicity_min_spearman},
        "peak_stability": {**stability, "value": stability["denoised"], "rule": "<=", "threshold": thresholds.peak_stability_max_nm},
    }
    for check in checks.values():
        check["passed"] = bool(check["value"] <= check["threshold"] if check["rule"] == "<=" else check["value"] >= check["threshold"])
    return {
        "checks": checks,
        "passed": all(c["passed"] for c in checks.values()),
        "thresholds": asdict(thresholds),
        "n_spectra": len(groups),
        "n_groups": len(np.unique(groups)),
    }
