"""FID and PRDC against their definitions, the published all-pairs PRDC, and a memory bound."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from gensynth.errors import GensynthError
from gensynth.metrics import fid, frechet_distance, prdc, prdc_reference

KEYS = ("precision", "recall", "density", "coverage")


def correlated(rng, count, dim, scale=1.0, shift=0.0):
    """Gaussian features with one fixed correlation structure per dimension, scaled and shifted."""
    mixing = np.random.default_rng(dim).standard_normal((dim, dim)) / np.sqrt(dim)
    return (rng.standard_normal((count, dim)) @ mixing) * scale + shift


def fid_by_eigenvalues(real, fake) -> float:
    """FID through tr sqrt(S1 S2) = sum_i sqrt(eig_i(S1^1/2 S2 S1^1/2)), a route without sqrtm."""
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    w, v = np.linalg.eigh(s1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = np.linalg.eigvalsh(root1 @ s2 @ root1)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


def test_fid_matches_the_definition():
    rng = np.random.default_rng(0)
    real = correlated(rng, 600, 16)
    fake = correlated(rng, 500, 16, scale=1.3, shift=0.4)
    value = fid(real, fake)
    assert value > 1.0
    assert value == pytest.approx(fid_by_eigenvalues(real, fake), rel=1e-6)


def test_fid_of_a_shift_is_the_squared_shift_and_of_the_same_set_zero():
    rng = np.random.default_rng(1)
    real = correlated(rng, 400, 8)
    shift = np.arange(8) / 4.0
    assert fid(real, real + shift) == pytest.approx(float(shift @ shift), rel=1e-6)
    assert abs(fid(real, real.copy())) < 1e-8


def test_frechet_distance_flags_an_imaginary_square_root_and_mismatched_shapes():
    # diag(1, -1) is no covariance: its square root has an imaginary diagonal entry
    with pytest.raises(GensynthError, match="imaginary component"):
        frechet_distance(np.zeros(2), np.diag([1.0, -1.0]), np.zeros(2), np.eye(2))
    with pytest.raises(GensynthError, match="shapes"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


def test_prdc_on_a_hand_computed_example():
    # k = 1, 1-D. Real 0, 1, 3 have radii 1, 1, 2; fakes 0.5 and 10 have radii 9.5.
    # precision: 0.5 is in the balls of 0 and 1, 10 in none -> 1/2; density (2 + 0) / (1 * 2) = 1;
    # recall: every real lies within 9.5 of the fake 0.5 -> 1; coverage: nearest fakes 0.5, 0.5, 2.5
    # against radii 1, 1, 2 -> 2/3.
    real = np.array([[0.0], [1.0], [3.0]])
    fake = np.array([[0.5], [10.0]])
    expected = {"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 2 / 3}
    assert prdc(real, fake, nearest_k=1) == pytest.approx(expected, rel=1e-12)
    assert prdc_reference(real, fake, nearest_k=1) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("nearest_k", [1, 5])
def test_prdc_matches_the_published_all_pairs_algorithm(nearest_k):
    rng = np.random.default_rng(2)
    real = correlated(rng, 900, 12)
    fake = correlated(rng, 700, 12, scale=1.2, shift=0.3)
    chunked = prdc(real, fake, nearest_k=nearest_k, chunk_size=128)
    reference = prdc_reference(real, fake, nearest_k=nearest_k)
    assert chunked == pytest.approx(reference, rel=1e-6)
    assert all(0.05 < chunked[key] < 1.0 for key in ("precision", "recall", "coverage"))  # no degenerate case


def test_prdc_chunking_does_not_change_the_result():
    rng = np.random.default_rng(3)
    real, fake = correlated(rng, 301, 6), correlated(rng, 257, 6, shift=0.2)
    results = [prdc(real, fake, chunk_size=size) for size in (1, 7, 100, 10_000)]
    assert all(result == results[0] for result in results)


def test_prdc_of_identical_sets_is_one_and_of_distant_sets_zero():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((200, 5))
    assert prdc(real, real.copy()) == {key: 1.0 for key in KEYS}
    assert prdc_reference(real, real.copy()) == {key: 1.0 for key in KEYS}
    assert prdc(real, real + 100.0) == {key: 0.0 for key in KEYS}


def test_prdc_memory_stays_at_the_chunk_not_the_square():
    rng = np.random.default_rng(5)
    real, fake = rng.standard_normal((4000, 16)), rng.standard_normal((4000, 16))
    all_pairs_bytes = 4000 * 4000 * 8  # one distance matrix of the all-pairs algorithm: 128 MB
    tracemalloc.start()
    try:
        prdc(real, fake, chunk_size=200)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < all_pairs_bytes / 4, f"peak {peak / 1e6:.1f} MB"


@pytest.mark.parametrize(
    "real, fake, kwargs, message",
    [
        (np.zeros((10, 3)), np.zeros((10, 4)), {}, "3 dimensions, fake features 4"),
        (np.zeros(10), np.zeros((10, 3)), {}, "2-D"),
        (np.zeros((5, 3)), np.zeros((10, 3)), {"nearest_k": 5}, "at least 6 samples"),
        (np.full((10, 3), np.nan), np.zeros((10, 3)), {}, "non-finite"),
        (np.zeros((10, 3)), np.zeros((10, 3)), {"nearest_k": 0}, "nearest_k"),
        (np.zeros((10, 3)), np.zeros((10, 3)), {"chunk_size": 0}, "chunk_size"),
    ],
)
def test_bad_prdc_inputs_are_one_clear_error(real, fake, kwargs, message):
    with pytest.raises(GensynthError, match=message):
        prdc(real, fake, **kwargs)


def test_bad_fid_inputs_are_one_clear_error():
    with pytest.raises(GensynthError, match="at least 2 samples"):
        fid(np.zeros((1, 3)), np.zeros((5, 3)))
    with pytest.raises(GensynthError, match="real numbers"):
        fid(np.array([["a", "b"], ["c", "d"]]), np.zeros((2, 2)))
