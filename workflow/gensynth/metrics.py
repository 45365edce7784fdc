"""Sample-quality metrics on feature vectors: FID and precision/recall/density/coverage.

FID (Heusel et al. 2017) is the Fréchet distance between two Gaussians fitted to the
features, computed exactly as pytorch-fid's ``calculate_frechet_distance`` does:

1. ``mu_i = mean(features_i)``, ``sigma_i = cov(features_i)`` (unbiased, ``np.cov``);
2. ``covmean = sqrtm(sigma_1 sigma_2)`` (``scipy.linalg.sqrtm``); if it is not finite
   (a singular product), retry with ``eps`` added to both diagonals;
3. a complex ``covmean`` whose diagonal's imaginary part exceeds 1e-3 is an error,
   otherwise its real part is kept;
4. ``FID = |mu_1 - mu_2|^2 + tr(sigma_1) + tr(sigma_2) - 2 tr(covmean)``.

PRDC (Naeem et al. 2020, "Reliable Fidelity and Diversity Metrics for Generative Models",
ICML; reference code ``clovaai/generative-evaluation-prdc``). With ``R_i`` real and ``F_j``
fake features, ``r_i`` the distance from ``R_i`` to its k-th nearest real neighbour and
``f_j`` the same among the fakes (the point itself not counted):

1. precision = fraction of ``F_j`` with ``|F_j - R_i| < r_i`` for some ``i``;
2. recall = fraction of ``R_i`` with ``|R_i - F_j| < f_j`` for some ``j``;
3. density = ``(1 / (k M)) sum_j #{i : |F_j - R_i| < r_i}`` over the ``M`` fakes;
4. coverage = fraction of ``R_i`` whose nearest fake lies within ``r_i``.

:func:`prdc_reference` is the published all-pairs algorithm (memory grows with
``N x M``); :func:`prdc` computes the same numbers over blocks of ``chunk_size`` rows, so
its memory is ``O(chunk_size x max(N, M))`` (50,000 x 50,000 fits in well under 8 GB).
Both take Euclidean distances from scikit-learn's ``pairwise_distances`` in float64.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import scipy.linalg
from sklearn.metrics import pairwise_distances

from .errors import GensynthError

log = logging.getLogger(__name__)

FID_EPS = 1e-6  # pytorch-fid's diagonal offset for a singular covariance product
IMAGINARY_ATOL = 1e-3  # pytorch-fid's tolerance on the imaginary part of sqrtm's diagonal
PRDC_CHUNK_SIZE = 1024  # rows per distance block: 1024 x 50,000 float64 is 410 MB


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = FID_EPS) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid computes it."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise GensynthError(f"Fréchet distance: mean vectors have shapes {mu1.shape} and {mu2.shape}; expected equal shapes")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise GensynthError(
            f"Fréchet distance: covariances have shapes {sigma1.shape} and {sigma2.shape}; "
            f"expected ({mu1.size}, {mu1.size}) to match the means"
        )
    diff = mu1 - mu2
    covmean = _sqrtm(sigma1 @ sigma2)
    if not np.isfinite(covmean).all():
        log.warning("FID: singular covariance product; adding %g to the diagonal of both covariances", eps)
        offset = np.eye(sigma1.shape[0]) * eps
        covmean = _sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_ATOL):
            raise GensynthError(
                f"Fréchet distance: sqrtm(sigma1 sigma2) has an imaginary component of "
                f"{np.max(np.abs(covmean.imag)):.3g} (> {IMAGINARY_ATOL}); the covariances are degenerate"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean))


def _sqrtm(matrix: np.ndarray) -> np.ndarray:
    # scipy warns on a singular or ill-conditioned product; the caller checks finiteness as pytorch-fid does.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", scipy.linalg.LinAlgWarning)
        return scipy.linalg.sqrtm(matrix)


def feature_statistics(features: np.ndarray, name: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """Mean and (unbiased) covariance of (N, F) features, in float64."""
    features = _check_features(features, name, min_rows=2)
    return features.mean(axis=0), np.cov(features, rowvar=False)


def fid(real_features: np.ndarray, fake_features: np.ndarray) -> float:
    """FID between two (N, F) feature sets (any extractor; here the LeNet's)."""
    real = _check_features(real_features, "real features", min_rows=2)
    fake = _check_features(fake_features, "fake features", min_rows=2)
    _check_same_width(real, fake)
    return frechet_distance(*feature_statistics(real, "real features"), *feature_statistics(fake, "fake features"))


def prdc(real_features, fake_features, nearest_k: int = 5, chunk_size: int = PRDC_CHUNK_SIZE) -> dict[str, float]:
    """Precision, recall, density and coverage (Naeem et al. 2020) over blocks of rows.

    Gives the numbers of :func:`prdc_reference` with memory ``O(chunk_size x max(N, M))``.
    """
    real, fake = _check_prdc_inputs(real_features, fake_features, nearest_k)
    if chunk_size < 1:
        raise GensynthError(f"PRDC chunk_size = {chunk_size}: expected an integer >= 1")
    real_radii = _knn_radii(real, nearest_k, chunk_size)  # (N,)
    fake_radii = _knn_radii(fake, nearest_k, chunk_size)  # (M,)
    fakes_inside = np.zeros(len(fake), dtype=np.int64)  # per fake: #real balls that contain it
    real_recalled = np.zeros(len(real), dtype=bool)  # per real: inside some fake ball
    real_covered = np.zeros(len(real), dtype=bool)  # per real: its nearest fake inside its ball
    for start in range(0, len(real), chunk_size):
        rows = slice(start, start + chunk_size)
        distances = pairwise_distances(real[rows], fake)  # (n, M)
        fakes_inside += (distances < real_radii[rows, None]).sum(axis=0)
        real_recalled[rows] = (distances < fake_radii[None, :]).any(axis=1)
        real_covered[rows] = distances.min(axis=1) < real_radii[rows]
    return {
        "precision": float((fakes_inside > 0).mean()),
        "recall": float(real_recalled.mean()),
        "density": float((1.0 / nearest_k) * fakes_inside.mean()),
        "coverage": float(real_covered.mean()),
    }


def _knn_radii(features: np.ndarray, nearest_k: int, chunk_size: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row: the (k+1)-th smallest, self included."""
    radii = np.empty(len(features))
    for start in range(0, len(features), chunk_size):
        rows = slice(start, start + chunk_size)
        distances = pairwise_distances(features[rows], features)  # (n, N)
        # Exact zeros on the diagonal, as the all-pairs call gives (scikit-learn zeroes it only for X is Y).
        distances[np.arange(distances.shape[0]), np.arange(rows.start, rows.start + distances.shape[0])] = 0.0
        distances.partition(nearest_k, axis=1)
        radii[rows] = distances[:, nearest_k]
    return radii


def prdc_reference(real_features, fake_features, nearest_k: int = 5) -> dict[str, float]:
    """The published all-pairs PRDC (``prdc.compute_prdc``, clovaai/generative-evaluation-prdc).

    Kept beside :func:`prdc` for its tests and benchmark; memory grows with ``(N + M)^2``.
    """
    real, fake = _check_prdc_inputs(real_features, fake_features, nearest_k)

    def kth_value(unsorted, k):  # the k-th smallest per row (published: argpartition at k, valid for k < n only)
        indices = np.argpartition(unsorted, k - 1, axis=-1)[..., :k]
        return np.take_along_axis(unsorted, indices, axis=-1).max(axis=-1)

    real_radii = kth_value(pairwise_distances(real, real), nearest_k + 1)
    fake_radii = kth_value(pairwise_distances(fake, fake), nearest_k + 1)
    distance_real_fake = pairwise_distances(real, fake)
    precision = (distance_real_fake < real_radii[:, None]).any(axis=0).mean()
    recall = (distance_real_fake < fake_radii[None, :]).any(axis=1).mean()
    density = (1.0 / float(nearest_k)) * (distance_real_fake < real_radii[:, None]).sum(axis=0).mean()
    coverage = (distance_real_fake.min(axis=1) < real_radii).mean()
    return {"precision": float(precision), "recall": float(recall), "density": float(density), "coverage": float(coverage)}


def _check_features(features, name: str, min_rows: int) -> np.ndarray:
    array = np.asarray(features)
    if array.ndim != 2:
        raise GensynthError(f"{name}: expected a 2-D (samples, features) array, got shape {array.shape}")
    if array.shape[0] < min_rows or array.shape[1] < 1:
        raise GensynthError(f"{name}: {array.shape[0]} samples of {array.shape[1]} features; expected at least {min_rows} samples and 1 feature")
    if not np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.complexfloating):
        raise GensynthError(f"{name}: dtype {array.dtype}; expected real numbers")
    array = array.astype(np.float64, copy=False)
    if not np.isfinite(array).all():
        raise GensynthError(f"{name}: {int((~np.isfinite(array)).sum())} non-finite values (NaN or inf)")
    return array


def _check_same_width(real: np.ndarray, fake: np.ndarray) -> None:
    if real.shape[1] != fake.shape[1]:
        raise GensynthError(f"real features have {real.shape[1]} dimensions, fake features {fake.shape[1]}; expected the same")


def _check_prdc_inputs(real_features, fake_features, nearest_k: int) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(nearest_k, bool) or not isinstance(nearest_k, (int, np.integer)) or nearest_k < 1:
        raise GensynthError(f"PRDC nearest_k = {nearest_k!r}: expected an integer >= 1")
    # The k-th neighbour other than the point itself needs k + 1 points.
    real = _check_features(real_features, "real features", min_rows=nearest_k + 1)
    fake = _check_features(fake_features, "fake features", min_rows=nearest_k + 1)
    _check_same_width(real, fake)
    return real, fake
