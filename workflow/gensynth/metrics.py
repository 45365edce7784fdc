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
ICML; reference code ``clovaai/generative-evaluation-prdc``, ``prdc.compute_prdc``). With
``R_i`` real and ``F_j`` fake features, ``r_i`` the distance from ``R_i`` to its k-th
nearest real neighbour and ``f_j`` the same among the fakes (the (k+1)-th smallest distance
with the point itself counted at 0, so duplicates count as neighbours at distance 0):

1. precision = fraction of ``F_j`` with ``|F_j - R_i| < r_i`` for some ``i``;
2. recall = fraction of ``R_i`` with ``|R_i - F_j| < f_j`` for some ``j``;
3. density = ``(1 / (k M)) sum_j #{i : |F_j - R_i| < r_i}`` over the ``M`` fakes;
4. coverage = fraction of ``R_i`` whose nearest fake lies within ``r_i``.

:func:`prdc_reference` is the published all-pairs algorithm (scikit-learn's float64
distances, memory ``(N + M)^2``). :func:`prdc` makes every comparison ``d < r`` exactly, over
blocks of at most ``chunk_size`` rows and ``PRDC_BLOCK_ELEMENTS`` entries (memory
``O(chunk_size x max(N, M))``), spread over torch's thread count (``_block_map``), in
three stages:

1. float32 products in torch give every squared distance within a proven bound
   (``_float32_bound``: centred features, ``|x|^2 + |y|^2 - 2 x.y`` as one product); a
   comparison whose margin exceeds it is decided there, and so are nearly all. A radius
   whose float32 rank is certain has one candidate neighbour; otherwise all within the
   bound of the float32 (k+1)-th value are candidates (the exact one is among them);
2. the open comparisons and the candidates are recomputed in float64 as ``sum (x - y)^2``,
   with a relative error below ``(D + 2) 2^-53`` (``_PointSet.interval``; none where the
   features lie on a grid coarse enough for float64 to be exact, e.g. small integers);
3. what is still open -- exact ties (duplicates, integer features) and values equal to
   ~15 digits -- is computed exactly (error-free sums and products, ``math.fsum``) and
   compared as ``sqrt(fl(d^2)) < sqrt(fl(r^2))``, ``fl`` the correct rounding to float64.

The outcome is that of exact arithmetic followed by scikit-learn's rounding to float64, its
square root and its strict ``<``. Why no comparison flips: stages 1 and 2 decide only where
the intervals (value +- twice its proven error) are disjoint, which leaves a gap between the
exact values that the rounding of stage 3 cannot close (it needs a relative gap of
``6 * 2^-53``); stage 3 is exact while every nonzero coordinate difference exceeds
``2^-450`` times the largest coordinate (below, its products could underflow).

``prdc.compute_prdc`` computes ``|x|^2 - 2 x.y + |y|^2`` in float64 with a rounding error of
about ``D 2^-53 (|x|^2 + |y|^2)`` that depends on its BLAS's blocking and threads (measured
here: 1 entry in 170,000 of a 3,000 x 2,000 matrix changes between one and two OpenBLAS
threads). The two agree on every comparison whose distances differ by more than that error,
and on all of them where float64 arithmetic is exact (e.g. integers below ``2^20`` in up to
256 dimensions: ties, duplicates and radius 0 included). They can differ only where
``compute_prdc`` compares its rounding noise: a point with at least k exact copies in its
own set (radius 0 here, up to ~1e-8 |x| there) that also lies exactly on a point of the
other set. Float32 features are compared as their float64 values (``compute_prdc`` on float32
arrays rounds the distances to float32, which makes ties of its own).
"""

from __future__ import annotations

import contextlib
import logging
import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch
from sklearn.metrics import pairwise_distances

from .errors import GensynthError

log = logging.getLogger(__name__)

FID_EPS = 1e-6  # pytorch-fid's diagonal offset for a singular covariance product
IMAGINARY_ATOL = 1e-3  # pytorch-fid's tolerance on the imaginary part of sqrtm's diagonal
PRDC_CHUNK_SIZE = 256  # most rows per float32 distance block
PRDC_BLOCK_ELEMENTS = 2**22  # most entries per block (16 MB, half a 32 MB L3; 83 rows of 50,000: fewer rows slow MKL's product)
PARALLEL_WORK = 2**24  # multiply-adds per block below which the blocks run in one thread (200 x 200 x 86 is 3.4M)
PARTITION_MAX_COLUMNS = 512  # rows up to this long go through np.partition, longer ones through _smallest
SELECTION_GROUP = 64  # columns per group of _smallest
PADDING = 2.0**120  # the value of the columns that round rows up to whole groups (squared distances are below 16 D)
FLOAT32_UNIT = 2.0**-24  # unit roundoff of float32
FLOAT64_UNIT = 2.0**-53
FLOAT32_FLOOR = 2.0**-100  # absolute slack of stage 1 (underflow; features are scaled to |x| < 1)
FLOAT64_FLOOR = 2.0**-1000  # absolute slack of stage 2 (underflow)
ROUNDING_GAP = 8 * FLOAT64_UNIT  # relative gap between d^2 < r^2 that keeps sqrt(fl(d^2)) < sqrt(fl(r^2)) (6 units needed)
VELTKAMP_SPLIT = 2.0**27 + 1  # splits a float64 into two 26-bit halves (Dekker's exact product)


def frechet_distance(mu1, sigma1, mu2, sigma2, eps: float = FID_EPS) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as pytorch-fid computes it."""
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, dtype=np.float64)), np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64)), np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.shape != mu2.shape:
        raise GensynthError(f"Fréchet distance: mean vectors have shapes {mu1.shape} and {mu2.shape}; expected equal shapes")
    if sigma1.shape != sigma2.shape or sigma1.shape != (mu1.size, mu1.size):
        raise GensynthError(
            f"Fréchet distance: covariances have shapes {sigma1.shape} and {sigma2.shape}; expected ({mu1.size}, {mu1.size}) to match the means"
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
    """Precision, recall, density and coverage (Naeem et al. 2020), each comparison exact.

    The values of ``prdc.compute_prdc`` (the module docstring says where they could differ)
    with memory ``O(chunk_size x max(N, M))``; they depend neither on ``chunk_size`` nor on
    the order of the rows.
    """
    real, fake = _check_prdc_inputs(real_features, fake_features, nearest_k)
    if chunk_size < 1:
        raise GensynthError(f"PRDC chunk_size = {chunk_size}: expected an integer >= 1")
    real_points, fake_points = _PointSet.pair(real, fake)
    width = max(len(real), len(fake))  # the longest row of a block
    block_rows = max(1, min(chunk_size, PRDC_BLOCK_ELEMENTS // width))
    with _ieee_float32_matmul(), _block_map(block_rows * width * (real.shape[1] + 2)) as blocks:
        real_radii = _knn_radii(real_points, nearest_k, block_rows, blocks)
        fake_radii = _knn_radii(fake_points, nearest_k, block_rows, blocks)
        fakes_inside, real_covered, real_recalled = _cross_membership(real_points, real_radii, fake_points, fake_radii, block_rows, blocks)
    return {
        "precision": float((fakes_inside > 0).mean()),
        "recall": float(real_recalled.mean()),
        "density": float((1.0 / nearest_k) * fakes_inside.mean()),
        "coverage": float(real_covered.mean()),
    }


@dataclass
class _PointSet:
    """One feature set in the forms the stages use (real and fake share the scale and the centre)."""

    exact: np.ndarray  # (n, D) float64: the features times a power of two, so every comparison is unchanged
    left: torch.Tensor  # (n, D+2) float32: [x, |x|^2, 1] with x the same, centred and rounded to float32
    right: torch.Tensor  # (n, D+2) float32: [-2x, 1, |x|^2], so that left_i . right_j = |x_i - x_j|^2
    sq_norms: np.ndarray  # (n,) float64: |x|^2
    spread: float  # relative half-width of stage 2's intervals (0 where its arithmetic is exact)

    @classmethod
    def pair(cls, real: np.ndarray, fake: np.ndarray) -> tuple[_PointSet, _PointSet]:
        largest = max(real.max(), -real.min(), fake.max(), -fake.min())
        scale = 1.0 if largest == 0 else math.ldexp(1.0, -math.frexp(largest)[1])  # |features| * scale < 1: no float32 overflow
        centre = real.mean(axis=0) * scale  # centring shrinks |x|^2 + |y|^2, hence stage 1's bound
        # sum (x - y)^2 in float64 errs by at most gamma_{D+2} ~ (D + 2) 2^-53 of it; twice that plus 12 units leaves
        # two disjoint intervals a relative gap of at least 6 units between the exact values, which fl() and the
        # square root cannot close.
        spread = 0.0 if _exact_in_float64(real, fake) else 2 * (real.shape[1] + 8) * FLOAT64_UNIT
        return cls.build(real * scale, centre, spread), cls.build(fake * scale, centre, spread)

    @classmethod
    def build(cls, exact: np.ndarray, centre: np.ndarray, spread: float) -> _PointSet:
        approx = (exact - centre).astype(np.float32)  # (n, D)
        wide = approx.astype(np.float64)
        sq_norms = np.einsum("ij,ij->i", wide, wide)
        sq, ones = sq_norms.astype(np.float32)[:, None], np.ones((len(approx), 1), dtype=np.float32)
        left, right = np.concatenate([approx, sq, ones], axis=1), np.concatenate([-2 * approx, ones, sq], axis=1)
        return cls(exact, torch.from_numpy(left), torch.from_numpy(right), sq_norms, spread)

    def interval(self, sq_distances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Intervals that hold the exact squared distances of stage 2's values (``_squared_distances``), with room to spare."""
        if self.spread == 0:
            return sq_distances, sq_distances
        return sq_distances * (1 - self.spread) - FLOAT64_FLOOR, sq_distances * (1 + self.spread) + FLOAT64_FLOOR


@dataclass
class _Radii:
    """Squared k-NN radii as float64 intervals holding the exact values, and the neighbours that give those exactly."""

    lower: np.ndarray  # (n,)
    upper: np.ndarray  # (n,)
    tied: np.ndarray  # per row, its candidates within rounding of the radius (usually the one neighbour at it), row after row
    first: np.ndarray  # (n,) each row's first entry in tied
    count: np.ndarray  # (n,) its number of entries
    rank: np.ndarray  # (n,) the radius's rank among them

    def exact_squared(self, exact: np.ndarray, rows: np.ndarray) -> np.ndarray:
        """fl(r^2) of each row, exactly (stage 3)."""
        wanted, back = np.unique(rows, return_inverse=True)
        counts = self.count[wanted]
        heads = np.cumsum(counts) - counts  # each wanted row's first pair below
        owners = np.repeat(wanted, counts)
        neighbours = self.tied[np.repeat(self.first[wanted] - heads, counts) + np.arange(counts.sum())]
        sq = _exact_squared_distances(exact[owners], exact[neighbours])
        return sq[np.lexsort((sq, owners))][heads + self.rank[wanted]][back]


@contextlib.contextmanager
def _block_map(work: int):
    """A map over blocks of rows that spreads them over torch's thread count, each op single-threaded.

    torch's OpenMP threads meet at a barrier after every operation: cheap on idle cores, ruinous
    on busy ones (10,000 x 64 took 15 s with 2 threads and two other jobs on the 2 cores, against
    1.6 s with 1); threads that each take whole blocks in turn keep going. Blocks smaller than
    ``PARALLEL_WORK`` multiply-adds run in this thread.
    """
    threads = torch.get_num_threads()
    if threads == 1:
        yield map
        return
    torch.set_num_threads(1)
    try:
        if work < PARALLEL_WORK:
            yield map
        else:
            with ThreadPoolExecutor(threads) as pool:
                yield pool.map
    finally:
        torch.set_num_threads(threads)


@contextlib.contextmanager
def _ieee_float32_matmul():
    """Full float32 products: stage 1's bound does not hold for bf16 or TF32 shortcuts."""
    saved = torch.get_float32_matmul_precision()
    if saved == "highest":
        yield
        return
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        torch.set_float32_matmul_precision(saved)


def _float32_bound(sq_norms: np.ndarray, other_sq_norm: float, dim: int) -> np.ndarray:
    """Twice a proven bound on |stage-1 value - exact value| of |x - y|^2, for each x and any |y|^2 <= other_sq_norm.

    With u = 2^-24: rounding the centred features to float32 moves |x - y|^2 by at most
    4u (|x|^2 + |y|^2); the product of D + 2 terms ``[x, |x|^2, 1] . [-2y, 1, |y|^2]`` (any
    order, fused or not) errs by at most gamma = (D+2)u / (1 - (D+2)u) times the sum of the
    terms' magnitudes, at most 2 (|x|^2 + |y|^2); storing |x|^2 and |y|^2 in float32 adds u
    times each.
    """
    gamma = (dim + 2) * FLOAT32_UNIT / (1 - (dim + 2) * FLOAT32_UNIT)
    return 2 * (4 * FLOAT32_UNIT + 2 * gamma + FLOAT32_UNIT) * (sq_norms + other_sq_norm) + FLOAT32_FLOOR


def _float32_up(values: np.ndarray) -> np.ndarray:
    """The float32 values just above float64 ones: a limit that rounding cannot move down."""
    return np.nextafter(values.astype(np.float32), np.float32(np.inf))


def _exact_in_float64(*features: np.ndarray) -> bool:
    """Whether stage 2's float64 arithmetic is exact on these features (and stays so, times a power of two).

    True when all lie on one grid 2^g Z below 2^t, with 2 (t + 1 - g) + log2(D) <= 50: every
    square of a difference and every partial sum is then an integer of the grid below 2^50,
    and distinct ones keep distinct square roots.
    """
    allowed = 50 - math.ceil(math.log2(features[0].shape[1]))
    # A first nonzero value with more significant bits than allowed / 2 rules most features out at once.
    first = next((float(value) for value in features[0][0] if value), 0.0)
    if not math.ldexp(math.frexp(first)[0], allowed // 2).is_integer():
        return False
    return _grid_bits(np.concatenate([array.ravel() for array in features])) <= allowed


def _grid_bits(values: np.ndarray) -> int:
    """2 (t + 1 - g) for the coarsest grid 2^g Z that holds the values and the least t with all |values| < 2^t."""
    values = values[values != 0]
    if not len(values):
        return 0
    mantissa, exponent = np.frexp(values)  # values = mantissa 2^exponent, 0.5 <= |mantissa| < 1
    digits = np.abs(np.ldexp(mantissa, 53)).astype(np.int64)  # the 53 significant bits as an integer
    lowest = exponent - 53 + np.log2(digits & -digits).astype(np.int64)  # exponent of each value's lowest set bit
    return 2 * (int(exponent.max()) + 1 - int(lowest.min()))


def _squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stage 2: sum (a - b)^2 row by row, in float64 (no cancellation, unlike |a|^2 - 2 a.b + |b|^2)."""
    diff = a - b  # (P, D)
    return np.einsum("ij,ij->i", diff, diff)


def _exact_squared_distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Stage 3: fl(sum (a - b)^2) row by row, the exact value correctly rounded to float64."""
    # 1. a - b = s + t exactly (Knuth's TwoSum)
    s = a - b
    v = s - a
    t = (a - (s - v)) - (b + v)
    # 2. (s + t)^2 = s s + 2 s t + t t, each product split exactly into p + e (Dekker's TwoProduct)
    terms = np.concatenate([*_two_product(s, s), *_two_product(2 * s, t), *_two_product(t, t)], axis=1)  # (P, 6D)
    # 3. math.fsum rounds the exact sum of its floats correctly
    return np.array([math.fsum(row) for row in terms.tolist()])


def _two_product(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x y = p + e exactly (Dekker 1971), barring underflow."""
    product = x * y
    x_high, x_low = _split(x)
    y_high, y_low = _split(y)
    error = ((x_high * y_high - product) + x_high * y_low + x_low * y_high) + x_low * y_low
    return product, error


def _split(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x = high + low with both halves on 26 bits (Veltkamp), so their products are exact."""
    scaled = VELTKAMP_SPLIT * x
    high = scaled - (scaled - x)
    return high, x - high


def _knn_radii(points: _PointSet, nearest_k: int, block_rows: int, blocks=map) -> _Radii:
    """Each point's squared distance to its k-th nearest other point: the (k+1)-th smallest, itself at 0."""
    count, dim = points.exact.shape
    left, right = points.left, points.right
    if count > PARTITION_MAX_COLUMNS:  # rows of whole groups for _smallest: padding columns that read PADDING
        padding = torch.zeros(-count % SELECTION_GROUP, dim + 2)
        padding[:, -1] = PADDING
        right = torch.cat([right, padding])  # (n', D+2)
    bound = _float32_bound(points.sq_norms, points.sq_norms.max(), dim)  # (n,)

    def block(start: int):
        stop = min(count, start + block_rows)
        approx = left[start:stop] @ right.T  # (c, n): |x_i - x_j|^2 within the bound
        local = torch.arange(stop - start)
        approx[local, local + start] = 0.0  # the point itself: exactly 0, as scikit-learn sets it
        rows, cols, rank = _radius_candidates(approx, bound[start:stop], nearest_k)
        return _select_radius(points, rows, cols, rank, start)

    pieces = list(blocks(block, range(0, count, block_rows)))
    lower, upper, tied, counts, rank = (np.concatenate(piece) for piece in zip(*pieces))
    return _Radii(lower, upper, tied, np.cumsum(counts) - counts, counts, rank)


def _radius_candidates(approx: torch.Tensor, bound: np.ndarray, nearest_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The points that can be at each row's radius, as (row, column) pairs, and the radius's rank among its row's.

    With t the float32 (k+1)-th value of a row, the exact one lies within the bound of t, so
    the points whose float32 values lie more than twice the bound below t are certainly
    nearer and those more than twice above certainly further: the candidates are the rest,
    and the radius's rank among them is k minus the number below. Usually that is the one
    point at t.
    """
    width = min(approx.shape[1], nearest_k + 2)  # the ranks up to k+1
    if approx.shape[1] <= PARTITION_MAX_COLUMNS:  # on short rows numpy's partition is faster than torch.topk
        ascending = np.sort(np.partition(approx.numpy(), width - 1, axis=1)[:, :width], axis=1)  # (c, width)
        at_radius = None
    else:
        values, columns = _smallest(approx, width)  # (c, width), ascending
        ascending, at_radius = values.numpy(), columns[:, nearest_k].numpy()
    radius = ascending[:, nearest_k]  # (c,) float32
    ascending = ascending.astype(np.float64)
    alone = ascending[:, nearest_k] - ascending[:, nearest_k - 1] > 2 * bound  # (c,) no other candidate
    if width > nearest_k + 1:
        alone &= ascending[:, nearest_k + 1] - ascending[:, nearest_k] > 2 * bound
    if at_radius is None:  # the one column that holds the radius's value
        at_radius = np.argmax(approx.numpy() == radius[:, None], axis=1)
    tied = np.flatnonzero(~alone)
    low = np.nextafter((ascending[tied, nearest_k] - 2 * bound[tied]).astype(np.float32), np.float32(-np.inf))  # (t,)
    high = _float32_up(ascending[tied, nearest_k] + 2 * bound[tied])
    values = approx[torch.from_numpy(tied)]  # (t, n)
    row, col = ((values >= torch.from_numpy(low)[:, None]) & (values <= torch.from_numpy(high)[:, None])).nonzero(as_tuple=True)
    rank = np.zeros(len(alone), dtype=np.int64)
    rank[tied] = nearest_k - (ascending[tied, :nearest_k] < low[:, None]).sum(axis=1)  # less those certainly nearer
    return np.concatenate([np.flatnonzero(alone), tied[row.numpy()]]), np.concatenate([at_radius[alone], col.numpy()]), rank


def _smallest(approx: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``width`` smallest values of each row, ascending, and their columns (rows of whole groups).

    A group of ``SELECTION_GROUP`` columns holds one of them only if its minimum is at most the
    width-th value, and fewer than ``width`` groups have a smaller minimum: so the ``width``
    groups with the smallest minima hold them all (ties included), and a top-k over their
    values costs a fraction of one over the row.
    """
    count, length = approx.shape
    minima = approx.view(count, length // SELECTION_GROUP, SELECTION_GROUP).amin(dim=2)  # (c, groups)
    groups = torch.topk(minima, min(width, minima.shape[1]), dim=1, largest=False, sorted=False).indices  # (c, g)
    columns = (groups[:, :, None] * SELECTION_GROUP + torch.arange(SELECTION_GROUP)).flatten(1)  # (c, g * group)
    values, picked = torch.topk(approx.gather(1, columns), width, dim=1, largest=False)  # (c, width), ascending
    return values, columns.gather(1, picked)


def _select_radius(points: _PointSet, rows: np.ndarray, cols: np.ndarray, rank: np.ndarray, start: int) -> tuple[np.ndarray, ...]:
    """Stage 2 on each row's candidates: the radius (of the given rank among them) as an interval, and its ties.

    Per row of the block that begins at ``start``: the interval's ends, the candidates whose
    intervals chain with the radius's (row after row), their number and the radius's rank among them.
    """
    sq = _squared_distances(points.exact[rows + start], points.exact[cols])  # (P,)
    order = np.lexsort((sq, rows))  # by row, then by value
    rows, cols, sq = rows[order], cols[order], sq[order]
    lower, upper = points.interval(sq)
    row_heads = np.r_[True, rows[1:] != rows[:-1]]
    # A run of ties: values whose intervals chain together; a new one starts where an interval lies above the last.
    starts_run = row_heads | np.r_[True, upper[:-1] < lower[1:]]
    run = np.cumsum(starts_run) - 1  # (P,) run of each candidate
    run_heads = np.flatnonzero(starts_run)
    radius_at = np.flatnonzero(row_heads) + rank  # (c,)
    radius_run = run[radius_at]
    first, last = run_heads[radius_run], np.r_[run_heads[1:], len(sq)][radius_run] - 1
    tied = cols[run == radius_run[rows]]
    return lower[first], upper[last], tied, last - first + 1, radius_at - first


def _cross_membership(real: _PointSet, real_radii: _Radii, fake: _PointSet, fake_radii: _Radii, block_rows: int, blocks=map):
    """The comparisons between the sets, from one float32 product per block of fakes.

    Returns per fake the number of real balls that hold it (|F_j - R_i| < r_i), per real
    whether a fake lies in its ball, and per real whether it lies in some fake's ball
    (|R_i - F_j| < f_j).
    """
    fake_side, real_side = fake.left, real.right  # (M, D+2), (N, D+2)
    # Below ``inside`` the comparison is certainly true, above ``outside`` certainly false; between, stage 2 decides.
    real_inside, real_outside = _float32_thresholds(real, real_radii, fake)  # (N,) each
    fake_inside, fake_outside = _float32_thresholds(fake, fake_radii, real)  # (M,) each

    def block(start: int):
        stop = min(len(fake_side), start + block_rows)
        approx = fake_side[start:stop] @ real_side.T  # (c, N): |F_j - R_i|^2 within the bound
        flags = torch.empty_like(approx)  # 0/1 per pair
        # the real balls: per column limits
        torch.lt(approx, real_inside, out=flags)
        counted = flags.sum(dim=1)  # (c,) real balls that certainly hold each fake
        covered = flags.amax(dim=0).numpy() > 0  # (N,)
        torch.le(approx, real_outside, out=flags)
        open_real = _open_pairs(approx, counted, flags.sum(dim=1), real_inside, real_outside, start)
        # the fake balls: per row limits
        inside, outside = fake_inside[start:stop, None], fake_outside[start:stop, None]  # (c, 1) each
        torch.lt(approx, inside, out=flags)
        certain = flags.sum(dim=1)
        recalled = flags.amax(dim=0).numpy() > 0  # (N,)
        torch.le(approx, outside, out=flags)
        open_fake = _open_pairs(approx, certain, flags.sum(dim=1), inside, outside, start)
        return counted.numpy().astype(np.int64), covered, recalled, open_real, open_fake

    counts, covered, recalled, open_real, open_fake = [], np.zeros(len(real_side), bool), np.zeros(len(real_side), bool), [], []
    for counted, block_covered, block_recalled, block_open_real, block_open_fake in blocks(block, range(0, len(fake_side), block_rows)):
        counts.append(counted)
        covered |= block_covered
        recalled |= block_recalled
        open_real.append(block_open_real)
        open_fake.append(block_open_fake)
    counts = np.concatenate(counts)  # (M,)
    fake_index, real_index = (np.concatenate(side) for side in zip(*open_real))
    inside = _inside(real, real_radii, fake, real_index, fake_index)
    counts += np.bincount(fake_index[inside], minlength=len(counts))
    covered[real_index[inside]] = True
    fake_index, real_index = (np.concatenate(side) for side in zip(*open_fake))
    recalled[real_index[_inside(fake, fake_radii, real, fake_index, real_index)]] = True
    return counts, covered, recalled


def _float32_thresholds(centres: _PointSet, radii: _Radii, points: _PointSet) -> tuple[torch.Tensor, torch.Tensor]:
    """Float32 limits on |x - y|^2 per centre: below the first, |x - y| < r for sure; above the second, not.

    The margin is stage 1's error (twice its bound), the radius interval's half-width and
    ``ROUNDING_GAP`` times r^2, rounded outwards: below the limit the exact values lie a
    relative gap of at least that apart, which the final rounding to float64 and the square
    root cannot close.
    """
    middle = (radii.lower + radii.upper) / 2  # (n,) r^2 within half the interval
    margin = _float32_bound(centres.sq_norms, points.sq_norms.max(), centres.exact.shape[1])
    margin += (radii.upper - radii.lower) / 2 + ROUNDING_GAP * middle
    inside = np.nextafter((middle - margin).astype(np.float32), np.float32(-np.inf))
    return torch.from_numpy(inside), torch.from_numpy(_float32_up(middle + margin))


def _open_pairs(
    approx: torch.Tensor, certain: torch.Tensor, possible: torch.Tensor, inside: torch.Tensor, outside: torch.Tensor, start: int
) -> tuple[np.ndarray, np.ndarray]:
    """(start + row, column) of the values between the limits (per column (N,) or per row (c, 1)), in rows whose counts differ."""
    rows = (possible > certain).nonzero()[:, 0]
    if not len(rows):
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    if inside.dim() == 2:  # per row
        inside, outside = inside[rows], outside[rows]
    values = approx[rows]  # (r, N)
    row, col = ((values >= inside) & (values <= outside)).nonzero(as_tuple=True)
    return rows[row].numpy() + start, col.numpy()


def _inside(centres: _PointSet, radii: _Radii, points: _PointSet, centre: np.ndarray, point: np.ndarray) -> np.ndarray:
    """Stages 2 and 3 for the pairs that stage 1 left open: is |y_point - x_centre| < r_centre?"""
    lower, upper = centres.interval(_squared_distances(centres.exact[centre], points.exact[point]))
    inside = upper < radii.lower[centre]
    unsure = ~inside & (lower < radii.upper[centre])  # lower == upper of the radius: |y - x| >= r
    if unsure.any():
        sq = _exact_squared_distances(centres.exact[centre[unsure]], points.exact[point[unsure]])
        radius_sq = radii.exact_squared(centres.exact, centre[unsure])
        inside[unsure] = np.sqrt(sq) < np.sqrt(radius_sq)  # scikit-learn's strict < on float64 distances
    return inside


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
