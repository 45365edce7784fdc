"""Simulated Z-contrast (HAADF-STEM-like) patches of a crystal lattice: the atoms generator.

An image is a ``G x G`` uint8 patch (G = 16 by default) whose label is the atomic number
``Z`` (1-118) of the lattice's atoms. Model, per image (parameters drawn by
:func:`draw_params`, ranges in :class:`LatticeImageConfig`):

1. Lattice: sites ``r_n = o + B n`` for ``n`` in Z^2, with basis ``B = a [u(theta), u(theta + phi)]``,
   ``u(t) = (cos t, sin t)``, ``phi = 90 deg`` (square) or ``60 deg`` (hexagonal); lattice
   constant ``a``, rotation ``theta`` and sub-pixel origin ``o`` are drawn at random.
2. Columns: each site is a Gaussian spot ``g(r) = exp(-|r|^2 / (2 sigma^2))`` with
   ``sigma^2 = sigma_atom^2 + sigma_probe^2``: the probe blur of a Gaussian column is again
   a Gaussian, so the blur is exact and costs nothing.
3. Z-contrast: the spots' amplitude is ``A_Z = gain * peak_counts * (Z / 118)^1.7``
   (HAADF intensity ~ Z^n with n close to 1.7; Pennycook & Jesson, Ultramicroscopy 37 (1991) 14).
4. Vacancies: each site in view is empty with a per-image probability; an empty site's
   spot is removed.
5. Detector: expected counts ``lam = background + A_Z * S(r)`` where ``S`` is the sum of
   the spots; the value is ``lam + sqrt(lam + read_noise^2) * xi`` with ``xi ~ N(0, 1)``
   (the Gaussian limit of Poisson shot noise, plus read noise), rounded and clipped to 0..255.

:func:`render_fast` evaluates steps 1-2 with the Poisson summation formula (e.g. Kittel,
*Introduction to Solid State Physics*, ch. 2, Fourier analysis of a lattice):

    sum_n g(r - o - B n) = (2 pi sigma^2 / |det B|) sum_m exp(-sigma^2 |G_m|^2 / 2) cos(G_m . (r - o)),
    G_m = 2 pi B^{-T} m.

With ``sigma >= 0.2 a`` the terms with ``max|m_i| > 2`` are below 1e-3 of a spot's peak,
so the constant term and 12 cosine pairs suffice. Each cosine splits into x and y factors
(angle addition), so one image is a single ``(G x K) @ (K x G)`` matrix product, batched
over the images; vacancies add K columns of separable Gaussians with negative weight.
:func:`render_reference` sums the real-space spots site by site, image by image; the
tests hold the two together.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.special

from ..errors import GensynthError

Z_MAX = 118
MIN_SIGMA_FRACTION = 0.2  # spot width / lattice constant that the 12 cosine pairs resolve (module doc)
LATTICE_ANGLES = {"square": np.pi / 2, "hexagonal": np.pi / 3}
# One vector of each +-m pair with max|m_i| <= 2 (m = 0 is the constant term).
RECIPROCAL_ORDERS = np.array([(1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 1), (1, 2), (2, -1), (1, -2), (2, 2), (2, -2)], dtype=np.float64)  # (M, 2)
# N(0, 1) at the mid-points of 2**16 equal-probability bins: a table look-up with a 16-bit
# index is four times faster than NumPy's Gaussian sampler and exact to the 16-bit level.
NORMAL_QUANTILES = scipy.special.ndtri((np.arange(2**16) + 0.5) / 2**16).astype(np.float32)  # (65536,)


@dataclass(frozen=True)
class LatticeImageConfig:
    """Ranges that :func:`draw_params` draws each image's parameters from (uniform in each range)."""

    lattice_constant_px: tuple[float, float] = (3.0, 6.0)
    """Distance between neighbouring sites, in pixels."""
    atom_sigma_fraction: tuple[float, float] = (0.20, 0.25)
    """Column width sigma_atom as a fraction of the lattice constant (keeps sigma >= 0.2 a, see the module doc)."""
    probe_sigma_px: tuple[float, float] = (0.3, 0.9)
    """Gaussian probe blur, in pixels."""
    vacancy_probability: tuple[float, float] = (0.0, 0.1)
    """Probability that a site in view is empty; drawn per image."""
    max_vacancies: int = 6
    """Most vacancies per image (the fast renderer's fixed number of vacancy slots)."""
    peak_counts: float = 200.0
    """Expected detector counts at a Z = 118 column's centre, above the background."""
    gain: tuple[float, float] = (0.9, 1.1)
    """Per-image detector gain (dose and scan drift)."""
    background_counts: tuple[float, float] = (2.0, 12.0)
    """Expected counts between columns (amorphous layer, dark current)."""
    read_noise: tuple[float, float] = (1.0, 3.0)
    """Standard deviation of the detector's read noise, in counts."""
    z_exponent: float = 1.7
    """Exponent n of the Z-contrast law, intensity ~ Z^n."""

    def __post_init__(self):
        if self.atom_sigma_fraction[0] < MIN_SIGMA_FRACTION:
            raise GensynthError(
                f"atom_sigma_fraction {self.atom_sigma_fraction}: expected a lower bound >= {MIN_SIGMA_FRACTION}, "
                "below which the fast renderer's truncated Fourier sum is no longer exact to a grey level"
            )


DEFAULT_CONFIG = LatticeImageConfig()


@dataclass
class LatticeParams:
    """Per-image parameters of a batch of n images (arrays of length n along axis 0)."""

    labels: np.ndarray  # (n,) uint8, Z in 1..118
    basis: np.ndarray  # (n, 2, 2) float64, columns are the lattice vectors a1, a2 (pixels)
    origin: np.ndarray  # (n, 2) float64, (x, y) of site n = 0 (pixels)
    sigma: np.ndarray  # (n,) float64, spot width (pixels)
    amplitude: np.ndarray  # (n,) float64, counts at a spot's centre
    background: np.ndarray  # (n,) float64, counts
    read_noise: np.ndarray  # (n,) float64, counts
    vacancy_sites: np.ndarray  # (n, V, 2) int64, lattice indices n of empty sites
    vacancy_active: np.ndarray  # (n, V) bool, False for an unused slot

    def __len__(self) -> int:
        return len(self.labels)


def _uniform(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    return rng.uniform(bounds[0], bounds[1], n)


def draw_params(rng: np.random.Generator, n: int, grid_size: int = 16, config: LatticeImageConfig = DEFAULT_CONFIG) -> LatticeParams:
    """Draw the parameters of ``n`` images (steps 1-5 of the module doc), vectorised."""
    labels = rng.integers(1, Z_MAX + 1, n).astype(np.uint8)  # (n,)
    hexagonal = rng.random(n) < 0.5  # (n,)
    a = _uniform(rng, config.lattice_constant_px, n)  # (n,)
    theta = rng.uniform(0.0, 2 * np.pi, n)  # (n,)
    phi = np.where(hexagonal, LATTICE_ANGLES["hexagonal"], LATTICE_ANGLES["square"])  # (n,)
    basis = a[:, None, None] * np.stack(
        [np.stack([np.cos(theta), np.sin(theta)], -1), np.stack([np.cos(theta + phi), np.sin(theta + phi)], -1)], -1
    )  # (n, 2, 2): [:, :, 0] = a1, [:, :, 1] = a2
    origin = rng.uniform(0.0, grid_size, (n, 2))  # (n, 2)
    sigma = np.hypot(a * _uniform(rng, config.atom_sigma_fraction, n), _uniform(rng, config.probe_sigma_px, n))  # (n,)
    amplitude = _uniform(rng, config.gain, n) * config.peak_counts * (labels / Z_MAX) ** config.z_exponent  # (n,)
    background = _uniform(rng, config.background_counts, n)  # (n,)
    read_noise = _uniform(rng, config.read_noise, n)  # (n,)

    # Vacancies: as many as a Binomial(sites in view, p) draw gives, each at the lattice
    # site nearest to a uniform point of the patch; a repeated site counts once.
    sites_in_view = np.rint(grid_size**2 / np.abs(np.linalg.det(basis))).astype(np.int64)  # (n,)
    count = np.minimum(rng.binomial(sites_in_view, _uniform(rng, config.vacancy_probability, n)), config.max_vacancies)
    points = rng.uniform(0.0, grid_size, (n, config.max_vacancies, 2))  # (n, V, 2)
    lattice_coords = np.matmul(points - origin[:, None, :], np.linalg.inv(basis).transpose(0, 2, 1))  # (n, V, 2)
    vacancy_sites = np.rint(lattice_coords).astype(np.int64)
    vacancy_active = np.arange(config.max_vacancies)[None, :] < count[:, None]  # (n, V)
    for v in range(1, config.max_vacancies):
        repeated = np.any(np.all(vacancy_sites[:, :v] == vacancy_sites[:, v : v + 1], axis=-1) & vacancy_active[:, :v], axis=1)
        vacancy_active[:, v] &= ~repeated
    return LatticeParams(labels, basis, origin, sigma, amplitude, background, read_noise, vacancy_sites, vacancy_active)


def render_fast(params: LatticeParams, grid_size: int = 16) -> np.ndarray:
    """Expected counts (n, G, G) float32 by Poisson summation: one batched matrix product."""
    basis, sigma, origin = params.basis, params.sigma, params.origin
    pixels = np.arange(grid_size, dtype=np.float32)  # (G,) pixel centres; x = column, y = row
    reciprocal = 2 * np.pi * np.linalg.inv(basis).transpose(0, 2, 1)  # (n, 2, 2): B^{-T}, times 2 pi
    g = np.matmul(RECIPROCAL_ORDERS, reciprocal.transpose(0, 2, 1))  # (n, M, 2): G_m = (Gx, Gy)
    dc = 2 * np.pi * sigma**2 / np.abs(np.linalg.det(basis))  # (n,) constant term
    coef = (2 * dc[:, None] * np.exp(-0.5 * sigma[:, None] ** 2 * np.sum(g**2, -1))).astype(np.float32)  # (n, M)
    phase = np.matmul(g, origin[:, :, None])[..., 0].astype(np.float32)  # (n, M): G_m . o
    gx, gy = g[..., 0].astype(np.float32), g[..., 1].astype(np.float32)  # (n, M)
    centres = origin[:, None, :] + np.matmul(params.vacancy_sites, basis.transpose(0, 2, 1))  # (n, V, 2)
    m, v = g.shape[1], centres.shape[1]

    # spots[y, x] = sum_k left[k, y] right[k, x], K = 2M + V factors filled in place:
    # coef cos(Gx x + Gy y - phase) = coef [cos(Gy y) cos(Gx x - phase) - sin(Gy y) sin(Gx x - phase)]
    left = np.empty((len(params), 2 * m + v, grid_size), np.float32)  # (n, K, G)
    right = np.empty_like(left)  # (n, K, G)
    arg_y = gy[..., None] * pixels  # (n, M, G)
    arg_x = gx[..., None] * pixels - phase[..., None]  # (n, M, G)
    np.cos(arg_y, out=left[:, :m])
    np.sin(arg_y, out=left[:, m : 2 * m])
    left[:, : 2 * m] *= np.concatenate([coef, -coef], axis=1)[..., None]
    np.cos(arg_x, out=right[:, :m])
    np.sin(arg_x, out=right[:, m : 2 * m])
    # Vacancies: minus a separable spot exp(-(y - py)^2 / 2s^2) exp(-(x - px)^2 / 2s^2) per used
    # slot; an unused slot's spot is moved far off the patch, where it underflows to 0.
    centres = np.where(params.vacancy_active[..., None], centres, -1e4).astype(np.float32)  # (n, V, 2)
    inv_two_var = (-0.5 / sigma**2).astype(np.float32)[:, None, None]  # (n, 1, 1)
    np.exp(inv_two_var * (pixels - centres[..., 1, None]) ** 2, out=left[:, 2 * m :])
    np.negative(left[:, 2 * m :], out=left[:, 2 * m :])
    np.exp(inv_two_var * (pixels - centres[..., 0, None]) ** 2, out=right[:, 2 * m :])

    spots = np.matmul(left.transpose(0, 2, 1), right)  # (n, G, G)
    spots += dc.astype(np.float32)[:, None, None]
    spots *= params.amplitude.astype(np.float32)[:, None, None]
    spots += params.background.astype(np.float32)[:, None, None]
    return spots


def render_reference(params: LatticeParams, grid_size: int = 16) -> np.ndarray:
    """Expected counts (n, G, G) float64: the real-space sum of every non-empty site's spot, image by image."""
    y, x = np.mgrid[0:grid_size, 0:grid_size].astype(np.float64)  # (G, G) each
    out = np.empty((len(params), grid_size, grid_size))
    for i in range(len(params)):
        basis, origin, sigma = params.basis[i], params.origin[i], params.sigma[i]
        # Lattice indices whose spots reach the patch: the patch grown by 8 sigma, in lattice coordinates.
        margin = 8 * sigma
        corners = np.array([[cx, cy] for cx in (-margin, grid_size + margin) for cy in (-margin, grid_size + margin)])
        corner_indices = (np.linalg.inv(basis) @ (corners - origin).T).T  # (4, 2)
        lo, hi = np.floor(corner_indices.min(0)).astype(int), np.ceil(corner_indices.max(0)).astype(int)
        n1, n2 = np.meshgrid(np.arange(lo[0], hi[0] + 1), np.arange(lo[1], hi[1] + 1), indexing="ij")
        indices = np.stack([n1.ravel(), n2.ravel()], -1)  # (S, 2)
        empty = {tuple(site) for site, used in zip(params.vacancy_sites[i], params.vacancy_active[i]) if used}
        indices = np.array([site for site in indices if tuple(site) not in empty]).reshape(-1, 2)
        sites = origin + indices @ basis.T  # (S, 2) positions (x, y)
        d2 = (x[None] - sites[:, 0, None, None]) ** 2 + (y[None] - sites[:, 1, None, None]) ** 2  # (S, G, G)
        out[i] = params.background[i] + params.amplitude[i] * np.exp(-d2 / (2 * sigma**2)).sum(0)
    return out


def add_noise(rng: np.random.Generator, expected: np.ndarray, read_noise: np.ndarray) -> np.ndarray:
    """Step 5: shot noise (Gaussian limit) plus read noise, rounded and clipped to uint8."""
    expected = np.asarray(expected, dtype=np.float32)  # (n, G, G)
    xi = NORMAL_QUANTILES[rng.integers(0, 2**16, expected.shape, dtype=np.uint16)]  # (n, G, G)
    read_var = (np.asarray(read_noise, dtype=np.float32) ** 2).reshape(-1, *([1] * (expected.ndim - 1)))  # (n, 1, 1)
    noisy = np.maximum(expected, 0) + read_var
    np.sqrt(noisy, out=noisy)
    noisy *= xi
    noisy += expected
    # +0.5 then truncation by astype rounds half up, one pass cheaper than np.rint.
    noisy += 0.5
    np.clip(noisy, 0, 255.5, out=noisy)
    return noisy.astype(np.uint8)


def generate_batch(rng: np.random.Generator, n: int, grid_size: int = 16, config: LatticeImageConfig = DEFAULT_CONFIG):
    """``n`` images (n, G, G) uint8 and their labels Z (n,) uint8: the pipeline's batch generator."""
    params = draw_params(rng, n, grid_size, config)
    return add_noise(rng, render_fast(params, grid_size), params.read_noise), params.labels


def generate_atomic_image(rng: np.random.Generator | None = None, grid_size: int = 16, config: LatticeImageConfig = DEFAULT_CONFIG):
    """One image (G, G) uint8 and its label Z, by the reference renderer (slow; the group's per-image API).

    Without ``rng`` it draws from NumPy's global state, so ``np.random.seed(s)`` makes a
    sequence of calls reproducible, as in the group's scripts.
    """
    if rng is None:
        rng = np.random.default_rng(np.random.randint(0, 2**63 - 1, dtype=np.int64))
    params = draw_params(rng, 1, grid_size, config)
    image = add_noise(rng, render_reference(params, grid_size), params.read_noise)
    return image[0], int(params.labels[0])
