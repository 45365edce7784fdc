"""The collapse test on simulated loops: its family-wise rate under nulls shaped like the real loops (shared
shocks, common drift, replicates that diverge), an injected onset found at its generation, the placebos, the record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gensynth.errors import GensynthError
from gensynth.madness.detection import (
    Signal,
    between_unit_placebos,
    decisions,
    detect,
    first_rejected,
    holm,
    jacobian_signals,
    placebo_rates,
    sample_signals,
    within_unit_placebos,
)

ALPHA = 0.05
NAMES = ("fid", "recall", "precision", "trace@t=50", "top@t=50", "effective_rank@t=200")
DIRECTIONS = [Signal(n, "sample", np.zeros(0), np.zeros(0)).direction for n in NAMES]


def loop_null(rng, units=6, replicates=2, generations=5) -> tuple[np.ndarray, np.ndarray]:
    """Both arms (S, U, R, G) under the null, with what the real loops share: a unit's own level, a shock per
    generation shared by every unit and both arms, a shock per unit and generation shared by its two arms, a
    common drift, each unit's arms apart by chance, and replicates that diverge from a common start."""
    signals = len(NAMES)
    shape = (signals, units, replicates, generations)
    unit_level = rng.normal(size=(signals, units, 1, 1))
    generation_shock = 0.7 * rng.normal(size=(signals, 1, 1, generations))
    unit_shock = 0.5 * rng.normal(size=(signals, units, 1, generations))
    drift = 0.4 * np.arange(generations)
    shared = unit_level + generation_shock + unit_shock + drift

    def arm():
        apart = 0.5 * rng.normal(size=(signals, units, 1, 1))
        diverging = np.cumsum(0.5 * rng.normal(size=shape), axis=-1)  # a random walk per replicate chain
        return shared + apart + diverging + 0.3 * rng.normal(size=shape)

    return arm(), arm()


def differences_of(treated: np.ndarray, control: np.ndarray) -> np.ndarray:
    return treated.mean(axis=2) - control.mean(axis=2)


def test_holm_rejects_step_down_and_stops_at_the_first_failure():
    p = np.array([0.001, 0.04, 0.012, 0.5])
    # sorted: 0.001 <= .05/4, 0.012 <= .05/3, 0.04 > .05/2: stop
    assert holm(p, 0.05).tolist() == [True, False, True, False]
    assert holm(np.array([0.2, 0.3]), 0.05).tolist() == [False, False]
    assert holm(np.array([[0.001, 0.002], [0.9, 0.003]]), 0.05).tolist() == [[True, True], [False, True]]


@pytest.mark.parametrize("units", [3, 6])
def test_under_realistic_nulls_the_rule_fires_at_most_at_alpha(units):
    rng = np.random.default_rng(units)
    trials = 1500
    whole, own = 0, np.zeros(len(NAMES))
    for _ in range(trials):
        _, rejected, own_rejected = decisions(differences_of(*loop_null(rng, units=units)), DIRECTIONS, ALPHA)
        whole += rejected.any()
        own += own_rejected.any(axis=1)
    bound = ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / trials)  # alpha plus 3 Monte Carlo standard errors
    assert whole / trials <= bound, whole / trials
    assert np.all(own / trials <= bound), own / trials  # each signal's own family: the race's false-alarm rate
    assert whole / trials > 0.01, "a rule that never fires on a null is not testing anything"


def test_what_both_arms_share_never_fires_however_large():
    rng = np.random.default_rng(7)
    treated, control = loop_null(rng)
    shock = np.zeros_like(treated)
    shock[..., 3:] = 1e3  # a shock at generation 3 in every unit and both arms
    _, rejected, _ = decisions(differences_of(treated + shock, control + shock), DIRECTIONS, ALPHA)
    _, unshocked, _ = decisions(differences_of(treated, control), DIRECTIONS, ALPHA)
    assert np.array_equal(rejected, unshocked)


def test_an_injected_onset_is_found_at_its_generation_and_not_before():
    rng = np.random.default_rng(1)
    found = []
    for _ in range(300):
        treated, control = loop_null(rng)
        treated[0, :, :, 2:] += 12.0  # FID rises from generation 2 in full_synthetic alone
        _, rejected, _ = decisions(differences_of(treated, control), DIRECTIONS, ALPHA)
        found.append(first_rejected(rejected)[0])
    assert found.count(2) / len(found) >= 0.8, {g: found.count(g) for g in set(found)}
    assert (found.count(0) + found.count(1)) / len(found) <= ALPHA


def test_one_sided_signals_ignore_the_other_direction():
    rng = np.random.default_rng(2)
    treated, control = loop_null(rng)
    treated[0] -= 50.0  # FID falls: not a collapse
    treated[1] += 50.0  # recall rises: not a collapse
    treated[2] += 50.0  # precision moves: two-sided, found
    _, rejected, _ = decisions(differences_of(treated, control), DIRECTIONS, ALPHA)
    assert not rejected[0].any() and not rejected[1].any() and rejected[2].all()


def test_placebos_fire_at_about_alpha_on_nulls_and_catch_replicates_that_disagree():
    rng = np.random.default_rng(3)
    rates = [placebo_rates(within_unit_placebos(loop_null(rng, replicates=2)[1]), DIRECTIONS, ALPHA)["family_rate"] for _ in range(600)]
    assert np.mean(rates) <= ALPHA + 3 * np.sqrt(ALPHA * (1 - ALPHA) / 600)
    _, control = loop_null(rng, replicates=2)
    control[:, :, 0, 1:] += 40.0  # replicate 0 of every unit runs away: the placebo must see it
    assert placebo_rates(within_unit_placebos(control), DIRECTIONS, ALPHA)["family_fired"] == 1
    assert between_unit_placebos(control[:, :3], 10, rng) == []  # 3 units: fewer than 2 placebo pairs
    placebos = between_unit_placebos(control, 10, rng)
    assert len(placebos) == 10 and placebos[0].shape == (len(NAMES), 3, control.shape[-1])


def arms_of(treated: np.ndarray, control: np.ndarray, noise: float = 0.1) -> tuple[list[Signal], list[Signal]]:
    family = ["sample" if "@" not in n else "jacobian" for n in NAMES]
    return tuple([Signal(n, f, values[i], np.full_like(values[i], noise)) for i, (n, f) in enumerate(zip(NAMES, family))] for values in (treated, control))


def test_the_detection_record_states_unit_control_rule_false_alarms_delays_and_power():
    rng = np.random.default_rng(4)
    treated, control = loop_null(rng, units=4, replicates=2, generations=4)
    treated[0, :, :, 1:] += 15.0
    record = detect(*arms_of(treated, control), alpha=ALPHA, n_bootstrap=100, seed=0, scale="demo")
    assert record["finding"] is False and "not a finding" in record["statement"]
    assert "initial model" in record["unit"] and record["control"].startswith("matched_real")
    assert "Holm" in record["rule"] and record["alpha"] == ALPHA and record["df"] == 3
    assert (record["initial_models"], record["replicates"], record["num_generations"], record["tests"]) == (4, 2, 4, len(NAMES) * 4)
    assert record["false_alarms"]["within_units"]["placebos"] == 1 and record["false_alarms"]["between_units"]["placebos"] == 100
    fid = record["signals"]["fid"]
    assert fid["direction"] == "greater" and fid["detected_at"] == 1 and fid["delay"] == 1
    low, high = fid["delay_interval"]
    assert low is not None and low <= 1 <= (high if high is not None else 4)
    for signal in record["signals"].values():
        lows, highs = signal["difference"]["interval"]
        assert all(lo < hi for lo, hi in zip(lows, highs))  # never a zero-width interval
        assert signal["noise"]["training_seed_sd"] > 0 and signal["noise"]["measurement_sd"] == pytest.approx(0.1)
        assert signal["detectable_difference"]["value"] > 0
    assert record["race"][0]["signal"] == "fid" and record["detected"]
    assert json.loads(json.dumps(record)) == record  # plain JSON
    assert detect(*arms_of(treated, control), alpha=ALPHA, n_bootstrap=100, seed=0, scale="demo") == record  # seeded
    assert detect(*arms_of(treated, control), alpha=ALPHA, n_bootstrap=100, seed=0, scale="study")["finding"] is True


def test_a_delay_interval_spreads_when_the_units_disagree():
    rng = np.random.default_rng(5)
    treated, control = loop_null(rng, units=3, replicates=1, generations=4)
    treated[0, :, :, 1:] += np.array([2.0, 6.0, 30.0])[:, None, None]  # an effect of very different size per unit
    record = detect(*arms_of(treated, control), alpha=ALPHA, n_bootstrap=200, seed=0, scale="demo")
    fid = record["signals"]["fid"]
    assert 0 < fid["delay_never_share"] < 1 and fid["delay_interval"][0] != fid["delay_interval"][1]
    assert record["false_alarms"]["within_units"] is None and record["false_alarms"]["between_units"] is None  # R = 1, U = 3


def test_signals_are_read_unit_major_with_their_measurement_noise():
    timesteps = np.array([5, 40, 5, 40])
    chain = [{"trace": np.array([1.0, 10.0, 3.0, 30.0])}, {"trace": np.array([2.0, 20.0, 4.0, 40.0])}]  # 2 generations
    signals = {s.name: s for s in jacobian_signals([chain, chain], timesteps, units=2, replicates=1, names=("trace",))}
    assert signals["trace@t=5"].values.tolist() == [[[2.0, 3.0]], [[2.0, 3.0]]]
    assert signals["trace@t=40"].noise[0, 0].tolist() == pytest.approx([np.std([10, 30], ddof=1) / np.sqrt(2), np.std([20, 40], ddof=1) / np.sqrt(2)])
    metrics = [[{n: {"value": float(c * 10 + g), "bootstrap_std": 0.5} for n in ("fid",)} for g in range(2)] for c in range(4)]
    (fid,) = sample_signals(metrics, units=2, replicates=2, names=("fid",))
    assert fid.values[1, 0].tolist() == [20.0, 21.0] and fid.noise.shape == (2, 2, 2)  # chain 2 = unit 1, replicate 0
    with pytest.raises(GensynthError, match="expected initial_models x replicates = 3 x 2"):
        sample_signals(metrics, units=3, replicates=2, names=("fid",))


def test_detection_refuses_mismatched_arms_or_a_single_unit():
    rng = np.random.default_rng(6)
    treated, control = arms_of(*loop_null(rng, units=3))
    with pytest.raises(GensynthError, match="different signals"):
        detect(treated, control[:-1], ALPHA, 10, 0, "demo")
    with pytest.raises(GensynthError, match="different units x replicates x generations"):
        detect(treated, [Signal(s.name, s.family, s.values[:2], s.noise[:2]) for s in control], ALPHA, 10, 0, "demo")
    one = [Signal(s.name, s.family, s.values[:1], s.noise[:1]) for s in treated]
    with pytest.raises(GensynthError, match="need >= 2 units"):
        detect(one, one, ALPHA, 10, 0, "demo")
