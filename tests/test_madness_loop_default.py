"""madness on the default run's outputs: the collapse the research is about, detection, files, reruns."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import snakemake
from gensynth.io import load_json, load_npz
from gensynth.madness.evaluation import METRICS

CONFIG = yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "config.yaml").read_text())["madness"]
SCENARIOS = CONFIG["scenarios"]["run"]
W = "0"
REPLICATES = range(CONFIG["detection"]["replicates"])


@pytest.fixture(scope="module")
def results(default_run) -> Path:
    return default_run / "results" / "madness"


def fid_curves(results: Path, scenario: str) -> np.ndarray:
    """FID per replicate and generation, (R, G)."""
    return np.array([[m["fid"]["value"] for m in load_json(results / scenario / f"w{W}" / f"rep{r}" / f"metrics_w{W}.json")["generations"]]
                     for r in REPLICATES])


def clearly_above(a: np.ndarray, b: np.ndarray) -> bool:
    """Every replicate of a is at least 1.5 times b's mean, and a's mean more than 2 replicate sds above b's."""
    return a.min() >= 1.5 * b.mean() and a.mean() - b.mean() > 2 * np.hypot(a.std(ddof=1), b.std(ddof=1))


@pytest.mark.dag
def test_default_full_synthetic_collapses_and_fresh_data_prevents_it(results):
    fid, fresh = fid_curves(results, "full_synthetic"), fid_curves(results, "fresh")
    curves = f"full_synthetic FID per replicate and generation {fid.round(1)}, fresh {fresh.round(1)}"
    # Every chain gets worse, by half again on average, and ends far above the chains fed fresh data.
    assert (fid[:, -1] > fid[:, 0]).all() and fid[:, -1].mean() >= 1.4 * fid[:, 0].mean(), curves
    assert clearly_above(fid[:, -1], fresh[:, -1]), curves
    # The corrected rule sees the collapse in a sample-quality metric, and no such metric moves in a control.
    detection = {s: load_json(results / s / f"w{W}" / f"detection_w{W}.json")["signals"] for s in SCENARIOS}
    assert any(detection["full_synthetic"][name]["departure"] is not None for name in METRICS), detection["full_synthetic"]
    for control in ("fresh", "augmented_synthetic"):
        assert all(detection[control][name]["departure"] is None for name in METRICS), control


@pytest.mark.dag
def test_default_every_generation_has_its_metrics_spectrum_and_tsne(results):
    lenet = load_json(results / "feature_extractor" / "lenet.json")
    assert lenet["test_accuracy"] >= CONFIG["feature_extractor"]["min_accuracy"]
    probes = load_npz(results / "probes" / "probes.npz")
    count = CONFIG["jacobian"]["num_images"] * len(CONFIG["jacobian"]["timesteps"])
    dim = CONFIG["data"]["image_size"] ** 2
    for scenario in SCENARIOS:
        generations = CONFIG["scenarios"][scenario]["generations"]
        for r in REPLICATES:
            loop = results / scenario / f"w{W}" / f"rep{r}"
            chain = load_json(loop / f"metrics_w{W}.json")
            assert chain["nearest_k"] == CONFIG["metrics"]["nearest_k"] and len(chain["generations"]) == generations
            assert chain["extractor_test_accuracy"] == pytest.approx(lenet["test_accuracy"])
            for metrics in chain["generations"]:
                assert metrics["num_generated"] == CONFIG["N_eval"] and all(metrics[name]["bootstrap_std"] > 0 for name in METRICS)
            spectrum = load_npz(loop / f"jacobian_w{W}.npz")
            assert spectrum["eigenvalues"].shape == (generations, count, dim)  # exact at 16 x 16: every eigenvalue
            assert np.array_equal(spectrum["timesteps"], probes["timesteps"])
            assert (loop / f"tsne_w{W}.png").read_bytes()[:4] == b"\x89PNG"
        detection = load_json(results / scenario / f"w{W}" / f"detection_w{W}.json")
        assert set(METRICS) | {"effective_rank@t=50", "trace@t=200"} <= set(detection["signals"])
        assert not any(name.startswith("spectral_entropy") for name in detection["signals"])  # exp of effective rank: dropped
        assert "Holm" in detection["rule"] and detection["alpha"] == CONFIG["detection"]["alpha"]
        assert detection["replicates"] == len(REPLICATES) and set(detection["error_rates"]["controls"]) == {"fresh", "augmented_synthetic"}
        for figure in ("signals", "metrics", "spectra"):
            assert (results / "figures" / f"{scenario}_w{W}_{figure}.png").stat().st_size > 10_000
    assert (results / "figures" / f"error_rates_w{W}.png").stat().st_size > 10_000
    table = pd.read_csv(results / f"summary_w{W}.csv")
    assert sorted(table["scenario"].unique()) == sorted(SCENARIOS)
    assert len(table) == len(REPLICATES) * sum(CONFIG["scenarios"][s]["generations"] for s in SCENARIOS)


@pytest.mark.dag
def test_default_fresh_never_reuses_a_real_image(results):
    used = [
        load_json(results / "fresh" / f"w{W}" / "rep0" / f"generation_{g}_w{W}.json")["real_indices"]
        for g in range(CONFIG["scenarios"]["fresh"]["generations"])
    ]
    assert all(len(block) == CONFIG["scenarios"]["fresh"]["n_real"] for block in used)
    assert len(set().union(*map(set, used))) == sum(map(len, used))


@pytest.mark.dag
def test_default_changed_scenario_reruns_only_its_own_jobs(default_run, tmp_path):
    assert "Nothing to be done" in snakemake(default_run, "-n", "--config", "modules=[madness]").stdout
    fresh = CONFIG["scenarios"]["fresh"]
    (tmp_path / "fresh.yaml").write_text(yaml.safe_dump({"madness": {"scenarios": {"fresh": {**fresh, "n_epoch": fresh["n_epoch"] + 1}}}}))
    output = snakemake(default_run, "-n", "--configfile", str(tmp_path / "fresh.yaml"), "--config", "modules=[madness]").stdout
    assert "scenario=fresh" in output
    assert "scenario=full_synthetic" not in output and "scenario=augmented_synthetic" not in output
    assert "madness_train_initial" not in output
