"""The four classical baselines: each removes white noise from smooth spectra, each tuning picks the setting of
least partner error where the answer is known, PCA's cross-validation never fits a held-out sample, and the
tuning script's JSON and NPZ give back the same filters (or one clear error when malformed)."""

from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pandas as pd
import pytest

from conftest import ROOT
from gensynth.denoise.baseline import (
    PcaProjection,
    SavgolParams,
    WaveletParams,
    WhittakerParams,
    fit_pca,
    load_baselines,
    partner_mse,
    tune_pca,
    tune_savgol,
    tune_wavelet,
    tune_whittaker,
)
from gensynth.denoise.data import load_manifest, partner_pairs, save_spectrum, write_manifest
from gensynth.errors import GensynthError
from gensynth.io import save_json, save_npz

sys.path.insert(0, str(ROOT / "scripts"))
import tune_baselines  # noqa: E402

INDEX = np.arange(256.0)
NOISE = 0.05


def smooth_family(n: int, seed: int) -> np.ndarray:
    """(n, 256) sums of two broad bands whose heights vary: rank 2 plus a constant."""
    rng = np.random.default_rng(seed)
    bands = np.stack([np.exp(-((INDEX - 90) ** 2) / (2 * 18.0**2)), np.exp(-((INDEX - 170) ** 2) / (2 * 25.0**2))])
    return (0.2 + rng.uniform(0.5, 1.5, (n, 2)) @ bands).astype(np.float32)


def noisy(clean: np.ndarray, seed: int) -> np.ndarray:
    return (clean + NOISE * np.random.default_rng(seed).standard_normal(clean.shape)).astype(np.float32)


def clean_error(denoised: np.ndarray, clean: np.ndarray) -> float:
    return float(np.mean((denoised.astype(np.float64) - clean) ** 2))


@pytest.mark.parametrize(
    "method",
    [SavgolParams(21, 3), WhittakerParams(100.0), WaveletParams("db4", 4, 1.0), "pca"],
    ids=["savgol", "whittaker", "wavelet", "pca"],
)
def test_each_method_removes_white_noise_from_a_smooth_spectrum(method):
    clean = smooth_family(60, seed=0)
    inputs = noisy(clean, seed=1)
    method = fit_pca(noisy(smooth_family(200, seed=2), seed=3), 3) if method == "pca" else method
    denoised = method.apply(inputs)
    assert denoised.shape == inputs.shape and denoised.dtype == np.float32
    # at least a quarter of the white noise's power gone (its variance is NOISE**2)
    assert clean_error(denoised, clean) < 0.25 * clean_error(inputs, clean)


def test_grid_tunings_pick_the_setting_of_least_partner_error():
    clean = smooth_family(40, seed=4)
    inputs, partners = noisy(clean, seed=5), noisy(clean, seed=6)

    best, scores = tune_whittaker(inputs, partners, [0.01, 1.0, 1000.0])
    assert [s["lam"] for s in scores] == [0.01, 1.0, 1000.0]
    assert best == WhittakerParams(1000.0)  # smooth bands: the strongest penalty
    assert scores[2]["mse"] == min(s["mse"] for s in scores)
    assert scores[2]["mse"] == partner_mse(best.apply(inputs), partners)

    best, scores = tune_wavelet(inputs, partners, ["db4"], [2, 40], [0.0, 1.0])
    # level 40 is clipped to the deepest of 256 points (5) and scored once per scale
    assert [(s["level"], s["threshold_scale"]) for s in scores] == [(2, 0.0), (2, 1.0), (5, 0.0), (5, 1.0)]
    assert best.threshold_scale == 1.0  # shrinking beats keeping every detail
    assert min(s["mse"] for s in scores) == partner_mse(best.apply(inputs), partners)

    best, scores = tune_savgol(inputs, partners, [5, 41], [2, 7])
    assert [(s["window"], s["polyorder"]) for s in scores] == [(5, 2), (41, 2), (41, 7)]  # order 7 needs a longer window than 5
    assert best.window == 41

    with pytest.raises(GensynthError, match="wavelet coif17: spectra of 64 points allow no decomposition level"):
        tune_wavelet(inputs[:, :64], partners[:, :64], ["coif17"], [3], [1.0])
    with pytest.raises(GensynthError, match="Whittaker lam 0.0: expected a finite number above 0"):
        tune_whittaker(inputs, partners, [0.0])


def test_pca_tuning_picks_the_rank_of_the_clean_spectra():
    clean = smooth_family(48, seed=7)
    inputs, partners = noisy(clean, seed=8), noisy(clean, seed=9)
    groups = np.repeat([f"treatment_{i}/A" for i in range(6)], 8)
    best, scores = tune_pca(inputs, partners, groups, [1, 2, 12], folds=3)
    assert [s["components"] for s in scores] == [1, 2, 12]
    assert best.params() == {"components": 2}  # the bands' two heights; more components keep noise
    # the final model is refitted on every spectrum
    refit = fit_pca(inputs, 2)
    np.testing.assert_allclose(best.apply(inputs), refit.apply(inputs), atol=1e-6)
    with pytest.raises(GensynthError, match="folds 7: expected 2 up to the training data's 6"):
        tune_pca(inputs, partners, groups, [2], folds=7)
    with pytest.raises(GensynthError, match=r"PCA components \[2, 40\]: expected 1 up to 32"):
        tune_pca(inputs, partners, groups, [2, 40], folds=3)


def test_pca_cross_validation_never_fits_a_held_out_sample():
    """Each sample is a constant plus its own band, a shape no other sample has: fitted with its own rows a PCA
    keeps the band (small error); fitted without them it cannot (the band's whole power is the error)."""
    centres = np.linspace(30, 226, 6)
    samples = np.stack([np.exp(-((INDEX - c) ** 2) / (2 * 6.0**2)) for c in centres])
    clean = np.repeat(samples, 8, axis=0).astype(np.float32)
    inputs, partners = noisy(clean, seed=10), noisy(clean, seed=11)
    groups = np.repeat([f"treatment_1/{name}" for name in "ABCDEF"], 8)

    _, scores = tune_pca(inputs, partners, groups, [6], folds=3)
    fitted_on_all = partner_mse(fit_pca(inputs, 6).apply(inputs), partners)
    band_power = float(np.mean(samples.astype(np.float64) ** 2))
    assert fitted_on_all < NOISE**2 + 0.05 * band_power
    assert scores[0]["mse"] > NOISE**2 + 0.9 * band_power


@pytest.fixture(scope="module")
def training_tree(tmp_path_factory):
    """A training manifest of 6 (treatment, sample) groups of 4 replicates, partners 0-1 and 2-3."""
    base = tmp_path_factory.mktemp("baselines")
    clean = smooth_family(6, seed=12)[:, ::4]  # 64 points
    rng = np.random.default_rng(13)
    rows = []
    for g, (treatment, sample) in enumerate([(t, s) for t in ("treatment_1", "treatment_2") for s in ("A", "B", "C")]):
        for replicate in range(4):
            relative = f"{treatment}/{sample}/angle_0/replicate_{replicate:03d}.npy"
            save_spectrum(base / "spectra" / relative, clean[g] + NOISE * rng.standard_normal(64))
            partner = f"{treatment}/{sample}/angle_0/replicate_{replicate ^ 1:03d}.npy"
            rows.append([relative, treatment, sample, 0, replicate, f"{treatment}_{sample}_angle0", partner])
    write_manifest(
        base / "manifest_train.csv", pd.DataFrame(rows, columns=["relative_path", "treatment", "sample", "angle", "replicate", "group_id", "n2n_partner"])
    )
    np.save(base / "wavelength_grid.npy", np.linspace(400.0, 715.0, 64))
    return base


def run_tuning(tree, out_dir) -> dict:
    argv = ["--train-manifest", str(tree / "manifest_train.csv"), "--root-dir", str(tree / "spectra"), "--wavelength-grid", str(tree / "wavelength_grid.npy")]
    argv += ["--windows", "5", "9", "--polyorders", "2", "--lams", "1", "100", "--wavelets", "db4", "sym8", "--levels", "2", "3"]
    argv += ["--threshold-scales", "0.5", "1", "--components", "1", "2", "4", "--folds", "3"]
    assert tune_baselines.main([*argv, "--out", str(out_dir / "baselines.json"), "--pca-out", str(out_dir / "arrays" / "pca.npz")]) == 0
    return json.loads((out_dir / "baselines.json").read_text())


def test_the_tuning_script_round_trip_is_deterministic_and_gives_the_same_filters(training_tree, tmp_path):
    record = run_tuning(training_tree, tmp_path / "first")
    again = run_tuning(training_tree, tmp_path / "second")
    assert record["methods"] == again["methods"]
    assert (tmp_path / "first/arrays/pca.npz").read_bytes() == (tmp_path / "second/arrays/pca.npz").read_bytes()
    assert record["n_rows"] == 24 and record["criterion"] == "mse to the n2n_partner"
    assert list(record["methods"]) == ["savgol", "whittaker", "wavelet", "pca"]
    assert record["methods"]["pca"]["arrays"] == "arrays/pca.npz"

    # the JSON and the NPZ move together
    shutil.move(tmp_path / "first", tmp_path / "moved")
    loaded = load_baselines(tmp_path / "moved" / "baselines.json")
    assert list(loaded) == ["savgol", "whittaker", "wavelet", "pca"]

    inputs, targets = partner_pairs(load_manifest(training_tree / "manifest_train.csv", training_tree / "spectra", partners=True), 64)
    groups = np.repeat([f"{t}/{s}" for t in ("treatment_1", "treatment_2") for s in "ABC"], 4)
    in_memory = {
        "savgol": tune_savgol(inputs, targets, [5, 9], [2])[0],
        "whittaker": tune_whittaker(inputs, targets, [1, 100])[0],
        "wavelet": tune_wavelet(inputs, targets, ["db4", "sym8"], [2, 3], [0.5, 1.0])[0],
        "pca": tune_pca(inputs, targets, groups, [1, 2, 4], 3)[0],
    }
    for name, method in in_memory.items():
        assert loaded[name].params() == record["methods"][name]["best"] == method.params(), name
        np.testing.assert_array_equal(loaded[name].apply(inputs), method.apply(inputs), err_msg=name)
        assert record["methods"][name]["mse"] == min(s["mse"] for s in record["methods"][name]["scores"])


def malformed(tmp_path, change) -> str:
    """A valid pair of files, then ``change(record, npz_path)``."""
    npz = tmp_path / "pca.npz"
    save_npz(npz, {"mean": np.zeros(8), "components": np.eye(8)[:2]})
    record = {
        "methods": {
            "savgol": {"best": {"window": 5, "polyorder": 2}},
            "whittaker": {"best": {"lam": 10}},
            "wavelet": {"best": {"wavelet": "db4", "level": 2, "threshold_scale": 1.0}},
            "pca": {"best": {"components": 2}, "arrays": "pca.npz"},
        }
    }
    change(record, npz)
    save_json(tmp_path / "baselines.json", record)
    return str(tmp_path / "baselines.json")


def test_a_valid_pair_loads(tmp_path):
    loaded = load_baselines(malformed(tmp_path, lambda record, npz: None))
    assert isinstance(loaded["pca"], PcaProjection) and loaded["whittaker"] == WhittakerParams(10)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda r, npz: r.pop("methods"), r"baselines.json: expected a JSON object with 'methods'"),
        (lambda r, npz: r["methods"].pop("wavelet"), r"methods.wavelet.best is None; expected an object with wavelet \(str\), level \(int\)"),
        (lambda r, npz: r["methods"]["savgol"]["best"].update(window="5"), r"methods.savgol.best.window is '5'; expected"),
        (lambda r, npz: r["methods"]["savgol"]["best"].update(window=6), r"methods.savgol.best: Savitzky-Golay window 6: expected an odd number"),
        (lambda r, npz: r["methods"]["wavelet"]["best"].update(wavelet="db99"), r"methods.wavelet.best: wavelet 'db99': expected a discrete wavelet"),
        (lambda r, npz: r["methods"]["pca"].pop("arrays"), r"methods.pca is .*; expected 'best': \{'components': k\} and 'arrays'"),
        (lambda r, npz: r["methods"]["pca"]["best"].update(components=3), r"pca.npz: 2 components; expected the 3 that .*baselines.json names"),
        (lambda r, npz: save_npz(npz, {"mean": np.zeros(8)}), r"pca.npz: missing array\(s\) components"),
        (lambda r, npz: save_npz(npz, {"mean": np.zeros(8), "components": np.eye(9)[:2]}), r"pca.npz: PCA arrays of shapes mean \(8,\), components \(2, 9\)"),
        (lambda r, npz: save_npz(npz, {"mean": np.zeros(8, int), "components": np.eye(8)[:2]}), r"pca.npz: mean int64, components float64; expected float"),
        (lambda r, npz: npz.write_bytes(npz.read_bytes()[:40]), r"pca.npz: not a readable NPZ file"),
        (lambda r, npz: npz.unlink(), r"pca.npz: NPZ file not found"),
    ],
)
def test_a_malformed_pair_is_one_clear_error(tmp_path, change, message):
    with pytest.raises(GensynthError, match=message):
        load_baselines(malformed(tmp_path, change))


def test_a_missing_or_invalid_json_is_one_clear_error(tmp_path):
    with pytest.raises(GensynthError, match="baselines.json: JSON file not found"):
        load_baselines(tmp_path / "baselines.json")
    (tmp_path / "baselines.json").write_text("{")
    with pytest.raises(GensynthError, match="baselines.json: not valid JSON"):
        load_baselines(tmp_path / "baselines.json")
