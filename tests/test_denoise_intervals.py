"""The panel's intervals over held-out samples and seeds: coverage on nulls with shared sample and seed shocks,
the deterministic case, one-line refusals."""

from __future__ import annotations

import numpy as np
import pytest

from gensynth.denoise.intervals import crossed_interval
from gensynth.errors import GensynthError


@pytest.mark.parametrize(
    "seeds,units,unit_sd,seed_sd,noise_sd",
    [
        (3, 3, 1.0, 1.0, 1.0),  # the default panel: 3 held-out samples, 3 training seeds
        (3, 3, 1.0, 0.0, 0.3),  # samples dominate
        (3, 3, 0.0, 1.0, 0.3),  # seeds dominate (a shock every sample shares)
        (1, 4, 1.0, 0.0, 1.0),  # a deterministic baseline: units only
        (5, 6, 0.2, 0.2, 1.0),  # residual dominates
    ],
)
def test_the_interval_covers_the_true_mean_at_its_level_on_crossed_nulls(seeds, units, unit_sd, seed_sd, noise_sd):
    rng = np.random.default_rng(seeds * 100 + units)
    trials = 3000
    covered = 0
    for _ in range(trials):
        cells = rng.normal(0, unit_sd, units)[None, :] + rng.normal(0, seed_sd, seeds)[:, None] + rng.normal(0, noise_sd, (seeds, units))
        interval = crossed_interval(cells)
        covered += interval["low"] <= 0.0 <= interval["high"]
    # 95 % nominal; conservative where the residual enters both terms, never below nominal beyond Monte Carlo error
    assert 0.93 <= covered / trials <= 0.995


def test_a_single_seed_is_a_t_interval_over_units_and_equal_cells_give_a_point():
    cells = np.array([[1.0, 2.0, 4.0]])
    interval = crossed_interval(cells)
    half = 4.302652729911275 * np.std(cells, ddof=1) / np.sqrt(3)  # t(0.975, 2)
    assert interval["mean"] == pytest.approx(7 / 3) and interval["df"] == pytest.approx(2.0)
    assert (interval["low"], interval["high"]) == pytest.approx((7 / 3 - half, 7 / 3 + half))
    same = crossed_interval(np.zeros((3, 4)))
    assert same["low"] == same["high"] == same["mean"] == 0.0  # identical methods differ by exactly nothing


def test_an_interval_over_one_held_out_sample_is_refused():
    with pytest.raises(GensynthError, match="needs at least 2 samples in the panel, got 1"):
        crossed_interval(np.ones((3, 1)))
