"""The classical baselines a spectroscopist would try, each tuned on the training data only.

- **savgol**: a Savitzky-Golay filter (Savitzky & Golay 1964): a polynomial of ``polyorder`` fitted to each
  ``window`` of points by least squares, its value at the centre (``scipy.signal.savgol_filter``,
  ``mode="interp"`` at the edges).
- **whittaker**: Whittaker smoothing (Eilers 2003, ``pybaselines.utils.whittaker_smooth``): the spectrum of
  least squared error plus ``lam`` times its squared second differences. The differences are taken along the
  wavelength INDEX axis, so ``lam`` is per grid point, not per nm: on a finer grid the same ``lam`` smooths
  fewer nanometres.
- **wavelet**: wavelet shrinkage (Donoho & Johnstone 1994, ``pywt``): the detail coefficients of a ``level``-deep
  decomposition are soft-thresholded at ``threshold_scale * sigma * sqrt(2 ln n)``, ``sigma`` the spectrum's
  noise estimated from its finest details (their median absolute value / 0.6745), ``n`` its length.
- **pca**: projection onto the first ``components`` principal components of the training spectra (scikit-learn
  ``PCA``) and back.

Every setting is scored as the model's Noise2Noise loss is: the mean squared difference between the denoised
spectrum and its partner replicate, whose expectation is the error against the clean spectrum plus the
partner's noise variance, the same for every setting, so the argmin is the same as with clean targets that
real data lack. savgol, whittaker and wavelet filter each spectrum alone and are scored on every training row;
pca learns from the spectra, so it is scored by grouped cross-validation (no sample both fitted and scored)
and then refitted on every training spectrum.

:func:`load_baselines` reads back what ``scripts/tune_baselines.py`` writes: a JSON of every method's choice
and scores, and the fitted PCA's arrays in an NPZ beside it.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol, get_type_hints

import numpy as np
import pywt
from pybaselines.utils import whittaker_smooth
from scipy.signal import savgol_filter
from sklearn.decomposition import PCA
from sklearn.model_selection import GroupKFold

from ..errors import GensynthError
from ..io import load_json, load_npz, save_npz

CRITERION = "mse to the n2n_partner"
MAD_TO_SIGMA = 0.6745  # the median absolute value of unit Gaussian noise


class Baseline(Protocol):
    name: ClassVar[str]
    title: ClassVar[str]

    def params(self) -> dict[str, Any]: ...

    def apply(self, spectra: np.ndarray) -> np.ndarray: ...


def describe(method: Baseline) -> str:
    """One line for a summary: the method's title and its settings."""
    return f"{method.title} ({', '.join(f'{key} {value}' for key, value in method.params().items())})"


def partner_mse(denoised: np.ndarray, partners: np.ndarray) -> float:
    """The tuning criterion: the mean squared difference to the partner replicates (float64)."""
    return float(np.mean((np.asarray(denoised, np.float64) - np.asarray(partners, np.float64)) ** 2))


@dataclass(frozen=True)
class SavgolParams:
    name: ClassVar[str] = "savgol"
    title: ClassVar[str] = "Savitzky-Golay"
    window: int  # odd number of points
    polyorder: int

    def __post_init__(self):
        if self.window < 1 or self.window % 2 == 0:
            raise GensynthError(f"Savitzky-Golay window {self.window}: expected an odd number of points")
        if not 0 <= self.polyorder < self.window:
            raise GensynthError(f"Savitzky-Golay polyorder {self.polyorder}: expected 0 up to the window {self.window} less one")

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        """(N, L) -> (N, L) float32, filtered along the wavelengths."""
        if self.window > spectra.shape[-1]:
            raise GensynthError(f"Savitzky-Golay window {self.window} is longer than the spectra ({spectra.shape[-1]} points)")
        return savgol_filter(spectra, self.window, self.polyorder, axis=-1, mode="interp").astype(np.float32)


@dataclass(frozen=True)
class WhittakerParams:
    name: ClassVar[str] = "whittaker"
    title: ClassVar[str] = "Whittaker"
    lam: float  # penalty on the squared second differences along the wavelength index

    def __post_init__(self):
        if not (math.isfinite(self.lam) and self.lam > 0):
            raise GensynthError(f"Whittaker lam {self.lam}: expected a finite number above 0")

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        """(N, L) -> (N, L) float32, each spectrum smoothed alone."""
        rows = np.asarray(spectra, np.float64).reshape(-1, spectra.shape[-1])
        smoothed = [whittaker_smooth(row, lam=self.lam, diff_order=2) for row in rows]
        return np.asarray(smoothed, np.float32).reshape(spectra.shape)


@dataclass(frozen=True)
class WaveletParams:
    name: ClassVar[str] = "wavelet"
    title: ClassVar[str] = "Wavelet shrinkage"
    wavelet: str
    level: int
    threshold_scale: float  # times the universal threshold sigma * sqrt(2 ln n)

    def __post_init__(self):
        if self.wavelet not in pywt.wavelist(kind="discrete"):
            raise GensynthError(f"wavelet {self.wavelet!r}: expected a discrete wavelet of pywt, such as db4, sym8 or coif3")
        if self.level < 1:
            raise GensynthError(f"wavelet level {self.level}: expected at least 1")
        if not (math.isfinite(self.threshold_scale) and self.threshold_scale >= 0):
            raise GensynthError(f"wavelet threshold_scale {self.threshold_scale}: expected a finite number of at least 0")

    def params(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        """(N, L) -> (N, L) float32, each spectrum's details shrunk at its own noise level."""
        length = spectra.shape[-1]
        deepest = pywt.dwt_max_level(length, self.wavelet)
        if self.level > deepest:
            raise GensynthError(f"wavelet {self.wavelet} level {self.level}: spectra of {length} points allow levels up to {deepest}")
        approximation, *details = pywt.wavedec(np.asarray(spectra, np.float64), self.wavelet, level=self.level, axis=-1)
        sigma = np.median(np.abs(details[-1]), axis=-1, keepdims=True) / MAD_TO_SIGMA
        threshold = self.threshold_scale * sigma * math.sqrt(2 * math.log(length))
        shrunk = [pywt.threshold(detail, threshold, mode="soft") for detail in details]
        # the reconstruction of an odd length has one point more
        return pywt.waverec([approximation, *shrunk], self.wavelet, axis=-1)[..., :length].astype(np.float32)


@dataclass(frozen=True, eq=False)
class PcaProjection:
    name: ClassVar[str] = "pca"
    title: ClassVar[str] = "PCA projection"
    mean: np.ndarray  # (L,) the training spectra's mean
    components: np.ndarray  # (k, L) orthonormal rows, the first k principal axes

    def __post_init__(self):
        if self.mean.ndim != 1 or self.components.ndim != 2 or self.components.shape[1] != len(self.mean) or len(self.components) < 1:
            raise GensynthError(f"PCA arrays of shapes mean {self.mean.shape}, components {self.components.shape}; expected (L,) and (k, L) with k >= 1")
        if not (np.isfinite(self.mean).all() and np.isfinite(self.components).all()):
            raise GensynthError("PCA arrays hold NaN or inf; expected finite numbers")

    def params(self) -> dict[str, Any]:
        return {"components": len(self.components)}

    def first(self, k: int) -> PcaProjection:
        """The projection onto the first ``k`` components only."""
        return PcaProjection(self.mean, self.components[:k])

    def apply(self, spectra: np.ndarray) -> np.ndarray:
        """(N, L) -> (N, L) float32, projected onto the components and back."""
        if spectra.shape[-1] != len(self.mean):
            raise GensynthError(f"PCA fitted on spectra of {len(self.mean)} points; these have {spectra.shape[-1]}")
        centred = np.asarray(spectra, np.float64) - self.mean
        return ((centred @ self.components.T) @ self.components + self.mean).astype(np.float32)


def fit_pca(spectra: np.ndarray, components: int) -> PcaProjection:
    """The first ``components`` principal axes of ``spectra`` (N, L); the full SVD is deterministic."""
    pca = PCA(n_components=components, svd_solver="full").fit(np.asarray(spectra, np.float64))
    return PcaProjection(pca.mean_, pca.components_)


def grid_search(candidates: Sequence[Baseline], inputs: np.ndarray, targets: np.ndarray) -> tuple[Baseline, list[dict]]:
    """The candidate of least :func:`partner_mse` on ``inputs`` (the first on a tie), and every candidate's score."""
    scores = [{**candidate.params(), "mse": partner_mse(candidate.apply(inputs), targets)} for candidate in candidates]
    best = min(range(len(candidates)), key=lambda i: scores[i]["mse"])
    return candidates[best], scores


def tune_savgol(inputs: np.ndarray, targets: np.ndarray, windows: Sequence[int], polyorders: Sequence[int]) -> tuple[SavgolParams, list[dict]]:
    """The (window, polyorder) of least mean squared error to ``targets`` (the partners), and every setting's score;
    an order not below the window is left out."""
    for window in windows:
        if window % 2 == 0 or window > inputs.shape[-1]:
            raise GensynthError(f"Savitzky-Golay window {window}: expected an odd number of points up to the spectra's {inputs.shape[-1]}")
    candidates = [SavgolParams(window, polyorder) for window in windows for polyorder in polyorders if 0 <= polyorder < window]
    if not candidates:
        raise GensynthError(f"no Savitzky-Golay setting with polyorder < window among windows {list(windows)} and orders {list(polyorders)}")
    return grid_search(candidates, inputs, targets)


def tune_whittaker(inputs: np.ndarray, targets: np.ndarray, lams: Sequence[float]) -> tuple[WhittakerParams, list[dict]]:
    """The ``lam`` of least mean squared error to ``targets``, and every candidate's score."""
    return grid_search([WhittakerParams(float(lam)) for lam in lams], inputs, targets)


def tune_wavelet(
    inputs: np.ndarray, targets: np.ndarray, wavelets: Sequence[str], levels: Sequence[int], threshold_scales: Sequence[float]
) -> tuple[WaveletParams, list[dict]]:
    """The (wavelet, level, threshold_scale) of least mean squared error to ``targets``, and every setting's score.
    A level deeper than the spectra allow for a wavelet is clipped to the deepest (so a setting is scored once)."""
    length = inputs.shape[-1]
    candidates = []
    for wavelet in wavelets:
        deepest = pywt.dwt_max_level(length, wavelet)
        if deepest < 1:
            raise GensynthError(f"wavelet {wavelet}: spectra of {length} points allow no decomposition level; expected a shorter wavelet")
        for level in dict.fromkeys(min(level, deepest) for level in levels):
            candidates += [WaveletParams(wavelet, level, float(scale)) for scale in threshold_scales]
    return grid_search(candidates, inputs, targets)


def tune_pca(inputs: np.ndarray, targets: np.ndarray, groups: Sequence[str], components: Sequence[int], folds: int) -> tuple[PcaProjection, list[dict]]:
    """The number of components of least cross-validated mean squared error to ``targets``, refitted on every
    input, and every candidate's score. The rows are split into ``folds`` by ``groups`` (GroupKFold: a group's
    rows are all fitted or all scored); each fold's held-out rows are projected by the PCA of the other folds'
    inputs, and a candidate's score is over every row's held-out projection."""
    groups = np.asarray(groups)
    if len(groups) != len(inputs):
        raise GensynthError(f"PCA tuning: {len(groups)} group labels for {len(inputs)} spectra; expected one per spectrum")
    distinct = len(np.unique(groups))
    if not 2 <= folds <= distinct:
        raise GensynthError(f"PCA cross-validation folds {folds}: expected 2 up to the training data's {distinct} (treatment, sample) groups")
    splits = list(GroupKFold(n_splits=folds).split(inputs, groups=groups))
    most = min(min(len(fit) for fit, _ in splits), inputs.shape[-1])
    if not components or not all(1 <= k <= most for k in components):
        raise GensynthError(f"PCA components {list(components)}: expected 1 up to {most} (the fewest spectra a fold fits on, or the spectra's length)")
    held_out = {k: np.empty(inputs.shape, np.float32) for k in components}
    for fit, scored in splits:
        projection = fit_pca(inputs[fit], max(components))  # the first k of a fit are the fit of k
        for k in components:
            held_out[k][scored] = projection.first(k).apply(inputs[scored])
    scores = [{"components": k, "mse": partner_mse(held_out[k], targets)} for k in components]
    best = min(scores, key=lambda score: score["mse"])
    return fit_pca(inputs, best["components"]), scores


def save_pca(path: str | os.PathLike, projection: PcaProjection) -> None:
    save_npz(path, {"mean": projection.mean, "components": projection.components})


METHODS = (SavgolParams, WhittakerParams, WaveletParams, PcaProjection)  # the summary's order


def load_baselines(path: str | os.PathLike) -> dict[str, Baseline]:
    """Every tuned method by its short name (savgol, whittaker, wavelet, pca, in that order) from the JSON of
    ``scripts/tune_baselines.py`` and the PCA arrays it names (a path relative to the JSON's folder)."""
    path = Path(path)
    record = load_json(path)
    methods = record.get("methods") if isinstance(record, dict) else None
    if not isinstance(methods, dict):
        raise GensynthError(f"{path}: expected a JSON object with 'methods' ({', '.join(m.name for m in METHODS)}), as scripts/tune_baselines.py writes")
    loaded: dict[str, Baseline] = {}
    for method in METHODS:
        entry = methods.get(method.name)
        best = entry.get("best") if isinstance(entry, dict) else None
        loaded[method.name] = load_pca(path, entry, best) if method is PcaProjection else load_filter(path, method, best)
    return loaded


def load_filter(path: Path, method: type, best: Any) -> Baseline:
    """A filter from its ``best`` settings, each of its field's type (an integer is a float too)."""
    kinds = {name: kind for name, kind in get_type_hints(method).items() if name in {field.name for field in dataclasses.fields(method)}}
    expected = f"an object with {', '.join(f'{name} ({kind.__name__})' for name, kind in kinds.items())}"
    if not isinstance(best, dict) or sorted(best) != sorted(kinds):
        raise GensynthError(f"{path}: methods.{method.name}.best is {best!r}; expected {expected}")
    for name, kind in kinds.items():
        allowed = (int, float) if kind is float else kind
        if isinstance(best[name], bool) or not isinstance(best[name], allowed):
            raise GensynthError(f"{path}: methods.{method.name}.best.{name} is {best[name]!r}; expected {expected}")
    try:
        return method(**best)
    except GensynthError as exc:
        raise GensynthError(f"{path}: methods.{method.name}.best: {exc}") from None


def load_pca(path: Path, entry: Any, best: Any) -> PcaProjection:
    """The fitted PCA from the NPZ that ``entry`` names, checked against its ``best`` number of components."""
    arrays = entry.get("arrays") if isinstance(entry, dict) else None
    k = best.get("components") if isinstance(best, dict) else None
    if not isinstance(k, int) or isinstance(k, bool) or not isinstance(arrays, str):
        raise GensynthError(f"{path}: methods.pca is {entry!r}; expected 'best': {{'components': k}} and 'arrays': the NPZ's path relative to {path.parent}")
    npz = path.parent / arrays
    saved = load_npz(npz, required=("mean", "components"))
    if not all(np.issubdtype(saved[name].dtype, np.floating) for name in ("mean", "components")):
        raise GensynthError(f"{npz}: mean {saved['mean'].dtype}, components {saved['components'].dtype}; expected float arrays")
    try:
        projection = PcaProjection(saved["mean"].astype(np.float64), saved["components"].astype(np.float64))
    except GensynthError as exc:
        raise GensynthError(f"{npz}: {exc}") from None
    if len(projection.components) != k:
        raise GensynthError(f"{npz}: {len(projection.components)} components; expected the {k} that {path} names")
    return projection
