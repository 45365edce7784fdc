"""The collapse detector on synthetic signals: it finds a known onset and fires at its stated rate on pure noise."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gensynth.errors import GensynthError
from gensynth.madness.detection import Signal, between_replicates_error_rate, detect, holm, jacobian_signals, rule

ALPHA = 0.05


def noise(rng, signals=13, replicates=3, generations=5, chain_sd=0.5) -> np.ndarray:
    """Pure noise (S, R, G): per-generation noise plus an offset that stays with each replicate chain."""
    return rng.normal(size=(signals, replicates, generations)) + chain_sd * rng.normal(size=(signals, replicates, 1))


def test_holm_rejects_step_down_and_stops_at_the_first_failure():
    p = np.array([0.001, 0.04, 0.012, 0.5])
    # sorted: 0.001 <= .05/4, 0.012 <= .05/3, 0.04 > .05/2: stop
    assert holm(p, 0.05).tolist() == [True, False, True, False]
    assert holm(np.array([0.2, 0.3]), 0.05).tolist() == [False, False]
    assert holm(np.array([[0.001, 0.002], [0.9, 0.003]]), 0.05).tolist() == [[True, True], [False, True]]


def test_on_pure_noise_the_rule_fires_at_most_at_its_stated_rate():
    rng = np.random.default_rng(0)
    trials = 2000
    fired = sum(rule(noise(rng), ALPHA)[1].any() for _ in range(trials))
    rate = fired / trials
    # family-wise rate at most alpha, allowing 3 Monte Carlo standard errors
    assert rate <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / trials), rate
    assert rate > 0.002, "a rule that never fires on noise is not testing anything"


def test_a_known_onset_is_found_at_its_generation():
    rng = np.random.default_rng(1)
    found = []
    for _ in range(300):
        values = noise(rng)
        values[4, :, 3:] += 8.0  # signal 4 moves by 8 noise sd from generation 3 on
        _, rejected = rule(values, ALPHA)
        row = rejected[4]
        found.append(int(np.argmax(row)) + 1 if row.any() else None)
    assert found.count(3) / len(found) >= 0.85, {g: found.count(g) for g in set(found)}
    assert found.count(1) + found.count(2) <= 0.05 * len(found)  # not before the onset


def test_between_replicate_error_rate_is_near_zero_on_noise_and_high_when_replicates_disagree():
    rng = np.random.default_rng(2)
    rates = [between_replicates_error_rate(noise(rng, chain_sd=0.0), ALPHA)["family_rate"] for _ in range(300)]
    assert np.mean(rates) <= 2 * ALPHA
    values = noise(rng, chain_sd=0.0)
    values[:, 0, 2] += 50.0  # replicate 0 of generation 2 is far off in every signal
    assert between_replicates_error_rate(values, ALPHA)["fired"] >= 13


def signals_of(values: np.ndarray, family="sample") -> list[Signal]:
    return [Signal(f"s{i}", family, v) for i, v in enumerate(values)]


def test_the_detection_record_states_rule_rates_departures_and_drift():
    rng = np.random.default_rng(3)
    collapsing = noise(rng, signals=3)
    collapsing[0, :, 2:] += 10.0  # collapses from generation 2
    collapsing[1, :, 1:] += 10.0  # moves from generation 1, but so do the controls: drift
    fresh, augmented = noise(rng, signals=3), noise(rng, signals=3)
    fresh[1, :, 1:] += 10.0
    augmented[1, :, 1:] += 10.0
    records = detect(
        {"full_synthetic": signals_of(collapsing), "fresh": signals_of(fresh), "augmented_synthetic": signals_of(augmented)},
        alpha=ALPHA,
        n_bootstrap=50,
        seed=0,
    )
    full = records["full_synthetic"]
    assert full["signals"]["s0"]["departure"] == 2 and full["signals"]["s0"]["drift_corrected"]["departure"] == 2
    assert full["signals"]["s1"]["departure"] == 1 and full["signals"]["s1"]["drift_corrected"]["departure"] is None
    assert full["signals"]["s2"]["departure"] is None
    lo, hi = full["signals"]["s0"]["departure_interval"]
    assert lo is not None and lo <= 2 <= hi
    assert full["drift_reference"] == ["fresh", "augmented_synthetic"] and full["tests"] == 3 * 4
    assert "Holm" in full["rule"] and full["alpha"] == ALPHA and full["replicates"] == 3
    assert set(full["error_rates"]["controls"]) == {"fresh", "augmented_synthetic"}
    assert full["error_rates"]["controls"]["fresh"]["family_fired"]  # the drifting signal fires there too: reported
    assert records["fresh"]["drift_reference"] is None
    assert full["departure_order"][0] == {"signal": "s1", "generation": 1}
    json.dumps(records)  # plain JSON


def test_jacobian_signals_average_each_timestep_over_the_probe_images():
    timesteps = np.array([5, 40, 5, 40])
    stats = [[{"trace": np.array([1.0, 10.0, 3.0, 30.0])}, {"trace": np.array([2.0, 20.0, 4.0, 40.0])}]]  # 1 replicate x 2 generations
    signals = {s.name: s.values for s in jacobian_signals(stats, timesteps, ("trace",))}
    assert signals["trace@t=5"].tolist() == [[2.0, 3.0]] and signals["trace@t=40"].tolist() == [[20.0, 30.0]]


def test_detection_refuses_too_few_replicates_or_generations():
    with pytest.raises(GensynthError, match="need >= 2 of each"):
        detect({"full_synthetic": [Signal("fid", "sample", np.zeros((1, 4)))]}, ALPHA, 10, 0)
    with pytest.raises(GensynthError, match="different replicates x generations"):
        detect({"full_synthetic": [Signal("a", "sample", np.zeros((3, 4))), Signal("b", "sample", np.zeros((3, 5)))]}, ALPHA, 10, 0)
