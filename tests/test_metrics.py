"""FID against its definition; PRDC against clovaai's prdc 0.2 (stored and live), exact arithmetic and a memory bound."""

from __future__ import annotations

import json
import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest
import torch

from conftest import ROOT
from gensynth.errors import GensynthError
from gensynth.metrics import (
    _exact_in_float64,
    _exact_squared_distances,
    _float32_bound,
    _PointSet,
    _smallest,
    fid,
    frechet_distance,
    prdc,
    prdc_reference,
)

KEYS = ("precision", "recall", "density", "coverage")
FIXTURE = ROOT / "tests/fixtures/prdc_reference.npz"  # made by tests/fixtures/make_prdc_reference.py
with np.load(FIXTURE) as stored:
    CASES = sorted({name.split("__")[0] for name in stored.files})


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


def fixture_case(name: str) -> tuple[np.ndarray, np.ndarray, int, dict[str, float]]:
    with np.load(FIXTURE) as data:
        values = dict(zip(KEYS, data[f"{name}__values"].tolist()))
        return data[f"{name}__real"], data[f"{name}__fake"], int(data[f"{name}__nearest_k"]), values


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


@pytest.mark.parametrize("chunk_size", [1, 3, 64, 100_000])
@pytest.mark.parametrize("case", CASES)
def test_prdc_equals_clovaais_values_stored_in_the_fixture(case, chunk_size):
    # Duplicates, radius 0, ties at the radius (integer and dyadic features) and bootstrap resamples.
    real, fake, nearest_k, expected = fixture_case(case)
    assert prdc(real, fake, nearest_k=nearest_k, chunk_size=chunk_size) == expected


def test_the_fixture_holds_ties_duplicates_and_radius_zero():
    real, fake, nearest_k, _ = fixture_case("integer_k3")
    _, counts = np.unique(real, axis=0, return_counts=True)
    assert counts.max() > nearest_k  # some real radius is 0
    assert (real[:, None, :] == fake[None, :, :]).all(axis=2).any()  # fakes on real points: distance 0
    _, _, _, grid = fixture_case("grid_ties")
    assert 0 < grid["precision"] < 1  # fakes exactly on a radius count as outside


def test_prdc_equals_compute_prdc_on_rows_longer_than_the_partition_limit():
    reference = pytest.importorskip("prdc")  # a test dependency: the pipeline never imports it
    rng = np.random.default_rng(7)
    gaussian = rng.standard_normal((1400, 16))
    cases = [
        (gaussian[rng.integers(0, 1400, 1500)], 0.2 + rng.standard_normal((1300, 16)), 5),  # real duplicates, radius 0
        (rng.integers(0, 4, (1100, 5)).astype(float), rng.integers(0, 4, (900, 5)).astype(float), 4),  # ties everywhere
    ]
    for real, fake, nearest_k in cases:
        expected = {key: float(value) for key, value in reference.compute_prdc(real, fake, nearest_k).items()}
        assert prdc(real, fake, nearest_k=nearest_k) == expected


def test_prdc_counts_a_fake_exactly_on_a_radius_as_outside_also_for_continuous_features():
    # k = 1: x1 is x0's nearest neighbour, so r0 = |x0 - x1|; a fake copy of x1 lies in x1's ball
    # (distance 0) and exactly on x0's sphere, which the strict < leaves out: density (1 + 0) / 2.
    # Float64 cannot settle |F - x0| against r0 here (two roundings of one value): stage 3 does.
    rng = np.random.default_rng(11)
    real = rng.standard_normal((3, 5))
    real[1] = real[0] + 0.3 * rng.standard_normal(5)
    real[2] = real[0] + 5 + rng.standard_normal(5)
    fake = np.stack([real[1].copy(), real[0] + 100])
    assert prdc(real, fake, nearest_k=1) == {"precision": 0.5, "recall": 1.0, "density": 0.5, "coverage": 1 / 3}


def test_exact_float64_is_recognised_only_where_it_holds():
    assert _exact_in_float64(np.arange(-300.0, 300.0).reshape(-1, 4))  # integers
    assert _exact_in_float64(np.array([[0.125, 3.5], [-7.25, 0.0]]))  # a dyadic grid
    assert not _exact_in_float64(np.array([[2.0**30, 1.0]]))  # squares of differences beyond 2^50
    assert not _exact_in_float64(np.random.default_rng(0).standard_normal((5, 3)))


@pytest.mark.parametrize("nearest_k", [1, 5])
def test_prdc_matches_the_published_all_pairs_algorithm(nearest_k):
    rng = np.random.default_rng(2)
    real = correlated(rng, 900, 12)
    fake = correlated(rng, 700, 12, scale=1.2, shift=0.3)
    blocked = prdc(real, fake, nearest_k=nearest_k, chunk_size=128)
    assert blocked == prdc_reference(real, fake, nearest_k=nearest_k)
    assert all(0.05 < blocked[key] < 1.0 for key in ("precision", "recall", "coverage"))  # no degenerate case


def test_prdc_depends_on_neither_the_block_size_nor_the_row_order():
    rng = np.random.default_rng(3)
    for real, fake in [
        (correlated(rng, 301, 6), correlated(rng, 257, 6, shift=0.2)),
        (rng.integers(0, 3, (301, 4)).astype(float), rng.integers(0, 3, (257, 4)).astype(float)),  # exact ties
    ]:
        expected = prdc(real, fake)
        for chunk_size in (1, 7, 100, 10_000):
            assert prdc(real, fake, chunk_size=chunk_size) == expected
        assert prdc(real[rng.permutation(len(real))], fake[rng.permutation(len(fake))], chunk_size=50) == expected


def test_prdc_of_identical_sets_is_one_and_of_distant_sets_zero():
    rng = np.random.default_rng(4)
    real = rng.standard_normal((200, 5))
    assert prdc(real, real.copy()) == {key: 1.0 for key in KEYS}
    assert prdc_reference(real, real.copy()) == {key: 1.0 for key in KEYS}
    assert prdc(real, real + 100.0) == {key: 0.0 for key in KEYS}


def test_prdc_ignores_reduced_float32_precision_and_restores_the_torch_settings():
    rng = np.random.default_rng(6)
    real, fake = rng.standard_normal((2000, 64)), 0.1 + rng.standard_normal((2000, 64))  # blocks big enough for 2 threads
    expected = prdc(real, fake)
    threads, precision = torch.get_num_threads(), torch.get_float32_matmul_precision()
    try:
        torch.set_num_threads(2)
        torch.set_float32_matmul_precision("medium")  # bf16 products where the CPU has them
        assert prdc(real, fake) == expected
        assert (torch.get_num_threads(), torch.get_float32_matmul_precision()) == (2, "medium")
    finally:
        torch.set_num_threads(threads)
        torch.set_float32_matmul_precision(precision)


def test_exact_squared_distances_are_the_correctly_rounded_exact_values():
    rng = np.random.default_rng(8)
    a = rng.standard_normal((300, 7)) * 2.0 ** rng.integers(-30, 30, (300, 7))  # mixed magnitudes
    b = a * (1 + 2.0**-50 * rng.standard_normal((300, 7)))  # near-cancellation: a - b is inexact in float64
    b[::3] = rng.standard_normal((100, 7))
    exact = [float(sum((Fraction(x) - Fraction(y)) ** 2 for x, y in zip(row_a, row_b))) for row_a, row_b in zip(a, b)]
    assert _exact_squared_distances(a, b).tolist() == exact
    naive = np.einsum("ij,ij->i", a - b, a - b)
    assert (naive != np.array(exact)).any()  # the naive float64 sum would not do


def test_smallest_through_group_minima_equals_a_full_top_k():
    rng = np.random.default_rng(10)
    for values in (torch.randn(30, 640), torch.from_numpy(rng.integers(0, 6, (30, 640)).astype(np.float32))):  # ties
        for width in (1, 7, 12):
            smallest, columns = _smallest(values, width)
            assert torch.equal(smallest, torch.topk(values, width, dim=1, largest=False).values)
            assert torch.equal(values.gather(1, columns), smallest)
            assert all(len(set(row)) == width for row in columns.tolist())  # distinct columns


def test_float32_bound_covers_the_error_of_stage_one():
    rng = np.random.default_rng(9)
    # A large common offset and one wide coordinate: float32 loses most digits of |x|^2 + |y|^2 - 2 x.y
    real = 1000.0 + rng.standard_normal((120, 32)) * np.r_[100.0, np.ones(31)]
    fake = 1000.0 + rng.standard_normal((100, 32))
    real_points, fake_points = _PointSet.pair(real, fake)
    approx = (real_points.left @ fake_points.right.T).double().numpy()  # (120, 100), as stage 1 computes them
    rows, cols = np.meshgrid(np.arange(120), np.arange(100), indexing="ij")
    exact = _exact_squared_distances(real_points.exact[rows.ravel()], fake_points.exact[cols.ravel()]).reshape(120, 100)
    error = np.abs(approx - exact)
    bound = _float32_bound(real_points.sq_norms, fake_points.sq_norms.max(), 32)[:, None] / 2  # the proven part
    assert (error <= bound).all()
    assert (error / bound).max() > 0.01  # and the bound is within two orders of the worst error (0.14 of it here)


def test_prdc_memory_stays_at_the_block_not_the_square():
    # In a child process: tracemalloc does not see torch's allocations, the resident peak does.
    script = """
import json, resource, numpy as np, torch
from gensynth.metrics import prdc
torch.set_num_threads(1)
rng = np.random.default_rng(5)
real, fake = rng.standard_normal((10000, 16)), rng.standard_normal((10000, 16))
prdc(real[:50], fake[:50])
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
prdc(real, fake)
print(json.dumps((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=300)
    extra = json.loads(done.stdout.strip().splitlines()[-1])
    all_pairs_bytes = 10000 * 10000 * 8  # one distance matrix of the all-pairs algorithm: 800 MB
    assert extra < all_pairs_bytes / 8, f"extra peak {extra / 1e6:.0f} MB"


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
