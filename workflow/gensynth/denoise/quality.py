"""Panel metrics of denoised spectra against a reference: PSNR, spectral angle, ROI peak position and area.

Notation: p the denoised (or raw) spectrum, r the reference, both (L,) on the grid λ.

1. PSNR = 10 log10(range(r)² / mean((p - r)²)) dB, range(r) = max(r) - min(r) (per spectrum, as for images
   with the data range as the peak).
2. SAM, the spectral angle (Kruse et al. 1993): arccos(p·r / (|p| |r|)) in degrees; 0 for proportional spectra.
3. ROI features in each configured window [a, b] nm, over its grid points: the area ∫_a^b p dλ (trapezoidal
   rule); the band above the chord between the window's ends (each end the mean of 3 points), b(λ); its area
   ∫ b dλ; and the peak position, the centroid Σ λ b / Σ b of the points where b is at least half its maximum
   (robust to noise, unlike the arg max, and equal to the centre for a symmetric band).

The reference is the clean spectrum where the data have one (the phantom); otherwise the mean of the other
replicates of the spectrum's group (leave-one-out, so its noise is independent of the spectrum's own): an
estimate of the clean spectrum with 1/(n-1) of a replicate's noise variance.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GensynthError
from ..io import load_yaml

MSE_FLOOR = 1e-20  # a perfect prediction gives a large, finite PSNR
CHORD_POINTS = 3  # each end of a window's chord is the mean of this many points (less noise than one)


def psnr(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N,) dB for (N, L) arrays."""
    data_range = ref.max(axis=1) - ref.min(axis=1)
    mse = np.maximum(np.mean((pred.astype(np.float64) - ref) ** 2, axis=1), MSE_FLOOR)
    return 10 * np.log10(data_range.astype(np.float64) ** 2 / mse)


def spectral_angle(pred: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """(N,) degrees for (N, L) arrays."""
    pred, ref = pred.astype(np.float64), ref.astype(np.float64)
    cosine = np.sum(pred * ref, axis=1) / np.maximum(np.linalg.norm(pred, axis=1) * np.linalg.norm(ref, axis=1), 1e-300)
    return np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))


@dataclass(frozen=True)
class RoiWindow:
    name: str
    low: float  # nm
    high: float


@dataclass(frozen=True)
class RoiConfig:
    """The ROI windows and the dose response the downstream proxy checks: area(numerator) / area(denominator)."""

    windows: tuple[RoiWindow, ...]
    dose_response: tuple[str, str]
    path: Path

    def check_grid(self, grid: np.ndarray, where: str | os.PathLike) -> None:
        for window in self.windows:
            if window.low < grid[0] or window.high > grid[-1]:
                raise GensynthError(
                    f"{self.path}: window {window.name} [{window.low:g}, {window.high:g}] nm lies outside the wavelength "
                    f"grid {grid[0]:g}-{grid[-1]:g} nm of {where}"
                )
            if np.count_nonzero((grid >= window.low) & (grid <= window.high)) < 3:
                raise GensynthError(
                    f"{self.path}: window {window.name} [{window.low:g}, {window.high:g}] nm holds fewer than 3 grid points of {where}; expected a wider window"
                )


def parse_roi_windows(data: object, path: Path) -> RoiConfig:
    """The ROI file's contents checked: ``windows: {name: [low, high]}``, ``dose_response: [numerator, denominator]``."""
    if not isinstance(data, dict) or not isinstance(data.get("windows"), dict) or not data["windows"]:
        raise GensynthError(f"{path}: expected 'windows: {{name: [low_nm, high_nm], ...}}' and 'dose_response: [numerator, denominator]'")
    windows = []
    for name, bounds in data["windows"].items():
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(isinstance(b, (int, float)) for b in bounds) or not bounds[0] < bounds[1]:
            raise GensynthError(f"{path}: window {name}: {bounds!r}; expected [low_nm, high_nm] with low < high")
        windows.append(RoiWindow(str(name), float(bounds[0]), float(bounds[1])))
    response = data.get("dose_response")
    names = [w.name for w in windows]
    if not isinstance(response, list) or len(response) != 2 or any(r not in names for r in response) or response[0] == response[1]:
        raise GensynthError(f"{path}: dose_response {response!r}; expected two different window names of {', '.join(names)}")
    return RoiConfig(tuple(windows), (response[0], response[1]), path)


def load_roi_windows(path: str | os.PathLike) -> RoiConfig:
    path = Path(path)
    return parse_roi_windows(load_yaml(path, "ROI windows file"), path)


@dataclass
class RoiFeatures:
    peak_nm: np.ndarray  # (N,) centroid of the band above half its maximum
    area: np.ndarray  # (N,) integral over the window
    band_area: np.ndarray  # (N,) integral above the chord between the window's ends


def roi_features(spectra: np.ndarray, grid: np.ndarray, window: RoiWindow) -> RoiFeatures:
    """The window's features of each spectrum of (N, L) (see the module doc, 3.)."""
    inside = np.flatnonzero((grid >= window.low) & (grid <= window.high))
    x, y = grid[inside], spectra[:, inside].astype(np.float64)  # (W,), (N, W)
    ends = min(CHORD_POINTS, len(x) // 2)
    left, right = y[:, :ends].mean(axis=1), y[:, -ends:].mean(axis=1)  # (N,) chord anchors
    x_left, x_right = x[:ends].mean(), x[-ends:].mean()
    band = y - (left[:, None] + (right - left)[:, None] * (x - x_left) / (x_right - x_left))  # (N, W) above the chord
    upper = np.maximum(band - 0.5 * band.max(axis=1, keepdims=True), 0.0)  # (N, W) the part above half the maximum
    weight = upper.sum(axis=1)
    peak = np.where(weight > 0, (upper * x).sum(axis=1) / np.where(weight > 0, weight, 1.0), x[np.argmax(y, axis=1)])
    return RoiFeatures(peak, np.trapezoid(y, x, axis=1), np.trapezoid(band, x, axis=1))


def reference_spectra(raw: np.ndarray, groups: np.ndarray, clean: np.ndarray | None, where: str) -> tuple[np.ndarray, str]:
    """The clean spectra when given, else each spectrum's leave-one-out group mean (see the module doc)."""
    if clean is not None:
        return clean, "clean"
    reference = np.empty_like(raw, dtype=np.float64)
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        if len(members) < 2:
            raise GensynthError(
                f"{where}: group {str(group)!r} has one spectrum; the replicate-mean reference needs at least 2 per group (or give the clean spectra)"
            )
        total = raw[members].astype(np.float64).sum(axis=0)
        reference[members] = (total - raw[members]) / (len(members) - 1)
    return reference, "replicate_mean"
