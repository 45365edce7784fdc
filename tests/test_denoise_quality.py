"""denoise metrics and gates on small cases with known answers: PSNR, SAM, ROI features, the four gates, the
downstream proxy's checks, the Savitzky-Golay tuning."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from gensynth.denoise.baseline import SavgolParams, tune_savgol
from gensynth.denoise.downstream import (
    DownstreamThresholds,
    dose_residual,
    downstream_metrics,
    peak_stability,
    replicate_variance,
    separability,
)
from gensynth.denoise.qa import GateThresholds, evaluate_gates
from gensynth.denoise.quality import RoiConfig, RoiWindow, parse_roi_windows, psnr, reference_spectra, roi_features, spectral_angle
from gensynth.errors import GensynthError

GRID = np.arange(400.0, 601.0, 1.0)
GATES = GateThresholds(psnr_gain_min_db=3.0, sam_min_improvement_deg=0.5, roi_peak_tolerance_nm=2.0, roi_area_tolerance=0.05, roi_min_fraction=0.8)
DOWNSTREAM = DownstreamThresholds(replicate_variance_max_ratio=0.5, separability_min_ratio=2.0, dose_residual_max_ratio=0.8, peak_stability_max_ratio=0.8)


def gaussian(centre: float, width: float = 8.0, amplitude: float = 1.0) -> np.ndarray:
    return amplitude * np.exp(-((GRID - centre) ** 2) / (2 * width**2))


def test_psnr_and_spectral_angle_known_values():
    ref = np.stack([gaussian(500.0), gaussian(450.0, amplitude=2.0)])  # data ranges ~1 and ~2
    offset = 0.01
    expected = 20 * np.log10((ref.max(1) - ref.min(1)) / offset)
    np.testing.assert_allclose(psnr(ref + offset, ref), expected, rtol=1e-9)
    assert psnr(ref, ref).min() > 150  # perfect: large and finite
    np.testing.assert_allclose(spectral_angle(3 * ref, ref), 0.0, atol=1e-5)
    orthogonal = np.stack([np.r_[1.0, 0.0], np.r_[1.0, 1.0]]), np.stack([np.r_[0.0, 1.0], np.r_[1.0, 0.0]])
    np.testing.assert_allclose(spectral_angle(*orthogonal), [90.0, 45.0], atol=1e-9)


def test_roi_features_of_a_band_on_a_sloped_baseline():
    window = RoiWindow("band", 460.0, 540.0)
    baseline = 0.2 + 0.001 * (GRID - 400)  # a straight line: the chord removes it exactly
    features = roi_features(np.stack([gaussian(503.3) + baseline]), GRID, window)
    assert features.peak_nm[0] == pytest.approx(503.3, abs=0.05)
    inside = (GRID >= 460) & (GRID <= 540)
    assert features.area[0] == pytest.approx(np.trapezoid((gaussian(503.3) + baseline)[inside], GRID[inside]), rel=1e-9)
    # above the chord: the band's area, minus its own small value at the window's ends
    assert features.band_area[0] == pytest.approx(8.0 * math.sqrt(2 * math.pi), rel=0.02)


def test_reference_is_clean_or_the_leave_one_out_replicate_mean():
    raw = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 9.0], [10.0, 10.0], [20.0, 30.0]])
    groups = np.array(["a", "a", "a", "b", "b"])
    reference, kind = reference_spectra(raw, groups, None, "panel.csv")
    assert kind == "replicate_mean"
    np.testing.assert_allclose(reference, [[4.0, 6.5], [3.0, 5.5], [2.0, 3.0], [20.0, 30.0], [10.0, 10.0]])
    assert reference_spectra(raw, groups, raw * 0, "panel.csv")[1] == "clean"
    with pytest.raises(GensynthError, match="group 'c' has one spectrum"):
        reference_spectra(raw[:3], np.array(["a", "a", "c"]), None, "panel.csv")


def per_spectrum(gain: float, sam_improvement: float, roi_ok: list[bool]) -> pd.DataFrame:
    n = len(roi_ok)
    return pd.DataFrame({"psnr_gain_db": [gain] * n, "sam_deg": [2.0 - sam_improvement] * n, "sam_raw_deg": [2.0] * n, "roi_ok": roi_ok})


def downstream_result(passed: list[bool]) -> dict:
    return {"checks": {f"check_{i}": {"passed": p} for i, p in enumerate(passed)}}


@pytest.mark.parametrize(
    "gain,sam,roi_ok,checks,expected",
    [
        (3.0, 0.5, [True] * 4 + [False], [True] * 4, [True, True, True, True]),  # every gate exactly at its threshold
        (2.99, 0.5, [True] * 5, [True] * 4, [False, True, True, True]),  # gate 1: gain below 3 dB
        (5.0, 0.49, [True] * 5, [True] * 4, [True, False, True, True]),  # gate 2: angle improved by less than the margin
        (5.0, 0.0, [True] * 5, [True] * 4, [True, False, True, True]),  # gate 2: no better than raw is not enough
        (5.0, 1.0, [True] * 3 + [False] * 2, [True] * 4, [True, True, False, True]),  # gate 3: 0.6 < 0.8 within tolerance
        (5.0, 1.0, [True] * 5, [True, True, False, True], [True, True, True, False]),  # gate 4: one proxy check failed
    ],
)
def test_each_gate_passes_and_fails_at_its_threshold(gain, sam, roi_ok, checks, expected):
    gates = evaluate_gates(per_spectrum(gain, sam, roi_ok), downstream_result(checks), GATES)
    assert [g["gate"] for g in gates] == ["psnr_gain", "sam_improvement", "roi_integrity", "downstream_proxy"]
    assert [g["passed"] for g in gates] == expected
    assert gates[0]["value"] == pytest.approx(gain) and gates[2]["value"] == pytest.approx(np.mean(roi_ok))


def test_downstream_checks_known_answers():
    rng = np.random.default_rng(0)
    doses = np.array([0.0, 1.0, 2.0, 4.0])
    # group g: a band at 450 nm growing with the dose over a fixed band at 550 nm, 10 noisy replicates
    clean = np.stack([gaussian(450.0, amplitude=0.5 + 0.2 * d) + gaussian(550.0) for d in doses])
    groups = np.repeat([f"g{i}" for i in range(4)], 10)
    treatments = np.repeat([f"t{i}" for i in range(4)], 10)
    dose = np.repeat(doses, 10)
    raw = np.repeat(clean, 10, axis=0) + 0.05 * rng.standard_normal((40, len(GRID)))
    halved = np.repeat(clean, 10, axis=0) + 0.5 * (raw - np.repeat(clean, 10, axis=0))  # noise halved: variance / 4
    assert replicate_variance(halved, groups) / replicate_variance(raw, groups) == pytest.approx(0.25, rel=1e-9)
    assert separability(halved, treatments) > 3 * separability(raw, treatments)
    roi = RoiConfig((RoiWindow("blue", 420.0, 480.0), RoiWindow("green", 520.0, 580.0)), ("blue", "green"), Path("roi.yaml"))
    exact = np.repeat(clean, 10, axis=0)
    assert dose_residual(exact, GRID, roi, dose) == pytest.approx(0.0, abs=1e-12)  # noise-free: a monotone response
    assert dose_residual(exact, GRID, roi, dose) == pytest.approx(dose_residual(exact, GRID, roi, dose[::-1]))  # decreasing counts too
    assert dose_residual(halved, GRID, roi, dose) < dose_residual(raw, GRID, roi, dose)  # less noise, less left unexplained
    assert dose_residual(exact, GRID, roi, np.repeat([0.0, 4.0, 1.0, 2.0], 10)) > 0.1  # not monotone in the dose
    assert peak_stability(np.repeat(clean, 10, axis=0), GRID, roi, groups) == pytest.approx(0.0, abs=1e-9)
    assert 0 < peak_stability(halved, GRID, roi, groups) < peak_stability(raw, GRID, roi, groups)

    result = downstream_metrics(halved, raw, GRID, roi, groups, treatments, dose, DOWNSTREAM, "panel.csv")
    assert result["checks"]["replicate_variance"]["value"] == pytest.approx(0.25, rel=1e-9)
    assert result["checks"]["treatment_separability"]["passed"] and result["checks"]["peak_stability"]["passed"]
    identity = downstream_metrics(raw, raw, GRID, roi, groups, treatments, dose, DOWNSTREAM, "panel.csv")
    assert {name: check["value"] for name, check in identity["checks"].items()} == dict.fromkeys(identity["checks"], 1.0)
    assert not any(check["passed"] for check in identity["checks"].values())  # the raw spectra fail every check
    with pytest.raises(GensynthError, match="one treatment"):
        downstream_metrics(raw, raw, GRID, roi, groups, np.repeat("t0", 40), dose, DOWNSTREAM, "panel.csv")


def test_roi_file_errors():
    good = parse_roi_windows({"windows": {"a": [400, 450], "b": [500, 550]}, "dose_response": ["a", "b"]}, Path("roi.yaml"))
    good.check_grid(GRID, "grid.npy")
    with pytest.raises(GensynthError, match="window a: \\[450, 400\\]; expected \\[low_nm, high_nm\\] with low < high"):
        parse_roi_windows({"windows": {"a": [450, 400]}, "dose_response": ["a", "a"]}, Path("roi.yaml"))
    with pytest.raises(GensynthError, match="dose_response \\['a', 'c'\\]; expected two different window names"):
        parse_roi_windows({"windows": {"a": [400, 450], "b": [500, 550]}, "dose_response": ["a", "c"]}, Path("roi.yaml"))
    outside = parse_roi_windows({"windows": {"a": [300, 450], "b": [500, 550]}, "dose_response": ["a", "b"]}, Path("roi.yaml"))
    with pytest.raises(GensynthError, match="window a \\[300, 450\\] nm lies outside the wavelength grid 400-600 nm"):
        outside.check_grid(GRID, "grid.npy")


def test_savgol_tuning_picks_the_window_of_least_partner_error():
    rng = np.random.default_rng(1)
    clean = np.stack([gaussian(c, width=12.0) for c in rng.uniform(450, 550, 40)])
    inputs = clean + 0.05 * rng.standard_normal(clean.shape)
    partners = clean + 0.05 * rng.standard_normal(clean.shape)
    best, scores = tune_savgol(inputs, partners, [5, 11, 21, 41, 81], [2, 3])
    assert len(scores) == 10
    by_setting = {(s["window"], s["polyorder"]): s["mse"] for s in scores}
    assert by_setting[(best.window, best.polyorder)] == min(by_setting.values())
    assert best.window in (11, 21, 41)  # neither the noisiest nor the most blurring window
    # against the clean spectra the chosen filter beats the raw input and the shortest window
    error = lambda params: float(np.mean((params.apply(inputs) - clean) ** 2))  # noqa: E731
    assert error(best) < error(SavgolParams(5, 3)) < float(np.mean((inputs - clean) ** 2))
    with pytest.raises(GensynthError, match="window 6: expected an odd number"):
        tune_savgol(inputs, partners, [6], [2])
