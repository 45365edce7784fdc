"""The classical baseline: a Savitzky-Golay filter (Savitzky & Golay 1964) tuned on the training data only.

The filter fits a polynomial of ``polyorder`` to each ``window`` of points by least squares and keeps its
value at the centre (``scipy.signal.savgol_filter``, ``mode="interp"`` at the edges). Window and order are
chosen on the training manifest as the model's Noise2Noise loss is: the mean squared difference between
the filtered spectrum and its partner replicate, whose expectation is the error against the clean spectrum
plus the partner's noise variance, the same for every setting, so the argmin is the same as with clean
targets that real data lack.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import savgol_filter

from ..errors import GensynthError


@dataclass(frozen=True)
class SavgolParams:
    window: int  # odd number of points
    polyorder: int

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        """(N, L) -> (N, L) float32, filtered along the wavelengths."""
        if self.window > spectra.shape[-1]:
            raise GensynthError(f"Savitzky-Golay window {self.window} is longer than the spectra ({spectra.shape[-1]} points)")
        return savgol_filter(spectra, self.window, self.polyorder, axis=-1, mode="interp").astype(np.float32)


def tune_savgol(inputs: np.ndarray, targets: np.ndarray, windows: list[int], polyorders: list[int]) -> tuple[SavgolParams, list[dict]]:
    """The (window, polyorder) of least mean squared error to ``targets`` (the partners), and every setting's score."""
    scores = []
    for window in windows:
        if window % 2 == 0 or window > inputs.shape[-1]:
            raise GensynthError(f"Savitzky-Golay window {window}: expected an odd number of points up to the spectra's {inputs.shape[-1]}")
        for polyorder in polyorders:
            if polyorder >= window:
                continue
            filtered = SavgolParams(window, polyorder).apply(inputs)
            scores.append({"window": window, "polyorder": polyorder, "mse": float(np.mean((filtered - targets) ** 2, dtype=np.float64))})
    if not scores:
        raise GensynthError(f"no Savitzky-Golay setting with polyorder < window among windows {windows} and orders {polyorders}")
    best = min(scores, key=lambda s: s["mse"])
    return SavgolParams(best["window"], best["polyorder"]), scores
