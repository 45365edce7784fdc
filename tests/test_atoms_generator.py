"""atoms: the lattice image model (fast renderer against the reference), noise, and learnable labels."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression

from gensynth.atoms import LatticeImageConfig, draw_params, generate_atomic_image, generate_batch, generate_corpus, render_fast, render_reference
from gensynth.atoms.lattice import add_noise
from gensynth.errors import GensynthError

MANY_VACANCIES = LatticeImageConfig(vacancy_probability=(0.3, 0.6))


@pytest.mark.parametrize("grid_size,config", [(16, LatticeImageConfig()), (16, MANY_VACANCIES), (23, LatticeImageConfig())])
def test_fast_renderer_matches_the_real_space_reference(grid_size, config):
    params = draw_params(np.random.default_rng(7), 150, grid_size, config)
    assert params.vacancy_active.any(axis=1).mean() > 0.3  # the vacancy path is exercised
    fast, reference = render_fast(params, grid_size), render_reference(params, grid_size)
    assert fast.shape == reference.shape == (150, grid_size, grid_size)
    # Truncating the Poisson sum at max|m| = 2 costs well under one count (grey level).
    assert np.abs(fast - reference).max() < 0.5


def test_a_vacancy_removes_one_spot_of_the_lattice():
    params = draw_params(np.random.default_rng(3), 40)
    params.vacancy_active[:] = False
    # One vacancy at the lattice site nearest the patch centre, in every image.
    centre = np.linalg.solve(params.basis, (np.array([7.5, 7.5]) - params.origin)[..., None])[..., 0]  # (n, 2)
    params.vacancy_sites[:, 0] = np.rint(centre)
    full = render_reference(params)
    params.vacancy_active[:, 0] = True
    missing = full - render_reference(params)  # (n, G, G): the removed spot alone
    site = params.origin + np.einsum("nij,nj->ni", params.basis, params.vacancy_sites[:, 0])  # (n, 2) x, y
    for i in range(len(params)):
        y, x = np.unravel_index(np.argmax(missing[i]), missing[i].shape)
        assert abs(x - site[i, 0]) <= 0.5 + 1e-9 and abs(y - site[i, 1]) <= 0.5 + 1e-9
        assert missing[i].max() <= params.amplitude[i] + 1e-9
        assert missing[i].max() > 0.6 * params.amplitude[i]  # within half a pixel of the centre
    assert np.allclose(missing, full - render_fast(params), atol=0.5)


def test_brightness_follows_z_contrast():
    params = draw_params(np.random.default_rng(0), 2000)
    gain = params.amplitude / (200.0 * (params.labels / 118.0) ** 1.7)
    assert np.all((gain >= 0.9 - 1e-9) & (gain <= 1.1 + 1e-9))
    images, labels = generate_batch(np.random.default_rng(0), 4000)
    means = np.array([images[(labels > lo) & (labels <= lo + 20)].mean() for lo in range(0, 118, 20)])
    assert np.all(np.diff(means) > 0), means  # heavier atoms, brighter images


def test_noise_is_shot_plus_read_noise_and_clipped():
    rng = np.random.default_rng(1)
    expected = np.full((400, 16, 16), 100.0, np.float32)
    noisy = add_noise(rng, expected, np.full(400, 2.0)).astype(np.float64)
    assert abs(noisy.mean() - 100.0) < 0.2
    assert abs(noisy.std() / np.sqrt(100.0 + 4.0) - 1.0) < 0.02
    bright = add_noise(rng, np.full((10, 16, 16), 400.0, np.float32), np.full(10, 2.0))
    dark = add_noise(rng, np.full((10, 16, 16), -5.0, np.float32), np.full(10, 0.0))
    assert bright.dtype == np.uint8 and bright.min() == 255 and dark.max() == 0


def test_batches_are_deterministic_typed_and_labelled_by_z():
    first = generate_batch(np.random.default_rng(5), 300)
    again = generate_batch(np.random.default_rng(5), 300)
    other = generate_batch(np.random.default_rng(6), 300)
    images, labels = first
    assert images.shape == (300, 16, 16) and images.dtype == np.uint8 and labels.dtype == np.uint8
    assert labels.min() >= 1 and labels.max() <= 118 and len(np.unique(labels)) > 80
    assert np.array_equal(images, again[0]) and np.array_equal(labels, again[1])
    assert not np.array_equal(images, other[0])


def test_per_image_function_follows_numpys_global_seed():
    np.random.seed(11)
    first = [generate_atomic_image() for _ in range(3)]
    np.random.seed(11)
    again = [generate_atomic_image() for _ in range(3)]
    for (grid, label), (grid2, label2) in zip(first, again):
        assert grid.shape == (16, 16) and grid.dtype == np.uint8 and 1 <= label <= 118
        assert np.array_equal(grid, grid2) and label == label2
    assert not np.array_equal(first[0][0], first[1][0])


def test_labels_are_learnable_from_the_images():
    """A linear classifier on raw pixels tells light, middle and heavy atoms apart far above chance."""
    images, labels = generate_corpus(3000, show_progress=False, seed=1)
    groups = np.digitize(labels, [40, 80])  # Z 1-39, 40-79, 80-118
    features = images.reshape(len(images), -1) / 255.0
    model = LogisticRegression(C=0.1, max_iter=500).fit(features[:2400], groups[:2400])
    accuracy = model.score(features[2400:], groups[2400:])
    chance = np.bincount(groups[2400:]).max() / 600
    assert accuracy > 0.75 > chance + 0.3, (accuracy, chance)


def test_spots_too_narrow_for_the_fast_renderer_are_refused():
    with pytest.raises(GensynthError, match="atom_sigma_fraction"):
        LatticeImageConfig(atom_sigma_fraction=(0.1, 0.2))


@pytest.mark.parametrize("a", [3.0, 5.5])
def test_lattices_are_square_or_hexagonal_with_the_configured_constant(a):
    config = dataclasses.replace(LatticeImageConfig(), lattice_constant_px=(a, a))
    basis = draw_params(np.random.default_rng(0), 400, 16, config).basis  # (n, 2, 2)
    assert np.allclose(np.linalg.norm(basis, axis=1), a)  # both lattice vectors have length a
    cosine = np.einsum("ni,ni->n", basis[:, :, 0], basis[:, :, 1]) / a**2
    square, hexagonal = np.isclose(cosine, 0.0), np.isclose(cosine, 0.5)
    assert np.all(square | hexagonal) and 0.4 < square.mean() < 0.6
