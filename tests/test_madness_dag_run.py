"""madness in the DAG run (tests/configs/dag.yaml): every generation's files, the detection's report, reruns.
The models are far too small for their numbers to mean anything: these tests pin the files and the rules."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from conftest import DAG_CONFIG, ENV, dag_config, snakemake
from gensynth.io import load_json, load_npz, sha256_file
from gensynth.madness.evaluation import METRICS

CONFIG = dag_config()["madness"]
SCENARIOS = CONFIG["scenarios"]["run"]
W = "0"
REPLICATES = range(CONFIG["detection"]["replicates"])


@pytest.fixture(scope="module")
def results(dag_run) -> Path:
    return dag_run / "results" / "madness"


@pytest.mark.dag
def test_dag_every_generation_has_its_metrics_spectrum_and_tsne(results):
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
            assert spectrum["eigenvalues"].shape == (generations, count, dim)  # exact at this size: every eigenvalue
            assert np.array_equal(spectrum["timesteps"], probes["timesteps"])
            assert (loop / f"tsne_w{W}.png").read_bytes()[:4] == b"\x89PNG"
        detection = load_json(results / scenario / f"w{W}" / f"detection_w{W}.json")
        timesteps = CONFIG["jacobian"]["timesteps"]
        assert set(METRICS) | {f"effective_rank@t={timesteps[0]}", f"trace@t={timesteps[-1]}"} <= set(detection["signals"])
        assert not any(name.startswith("spectral_entropy") for name in detection["signals"])  # exp of effective rank: dropped
        assert "Holm" in detection["rule"] and detection["alpha"] == CONFIG["detection"]["alpha"]
        assert detection["replicates"] == len(REPLICATES) and set(detection["error_rates"]["controls"]) == {"fresh", "augmented_synthetic"} & set(SCENARIOS)
        for figure in ("signals", "metrics", "spectra"):
            assert (results / "figures" / f"{scenario}_w{W}_{figure}.png").stat().st_size > 10_000
    assert (results / "figures" / f"error_rates_w{W}.png").stat().st_size > 10_000
    table = pd.read_csv(results / f"summary_w{W}.csv")
    assert sorted(table["scenario"].unique()) == sorted(SCENARIOS)
    assert len(table) == len(REPLICATES) * sum(CONFIG["scenarios"][s]["generations"] for s in SCENARIOS)


@pytest.mark.dag
def test_dag_fresh_never_reuses_a_real_image(results):
    used = [
        load_json(results / "fresh" / f"w{W}" / "rep0" / f"generation_{g}_w{W}.json")["real_indices"]
        for g in range(CONFIG["scenarios"]["fresh"]["generations"])
    ]
    assert all(len(block) == CONFIG["scenarios"]["fresh"]["n_real"] for block in used)
    assert len(set().union(*map(set, used))) == sum(map(len, used))


@pytest.mark.dag
def test_dag_changed_scenario_reruns_only_its_own_jobs(dag_run, tmp_path):
    same = ("--configfile", DAG_CONFIG)  # unchanged, nothing to do (test_dag_a_second_run_has_nothing_to_do)
    fresh = CONFIG["scenarios"]["fresh"]
    (tmp_path / "fresh.yaml").write_text(yaml.safe_dump({"madness": {"scenarios": {"fresh": {**fresh, "n_epoch": fresh["n_epoch"] + 1}}}}))
    output = snakemake(dag_run, "-n", *same, str(tmp_path / "fresh.yaml"), "--config", "modules=[madness]").stdout
    assert "scenario=fresh" in output
    assert "scenario=full_synthetic" not in output and "scenario=augmented_synthetic" not in output
    assert "madness_train_initial" not in output


# what Snakemake sets for a job of one thread: the BLAS and OpenMP pools' sizes, which fix their summation order
ONE_THREAD = {
    name: "1" for name in ("OMP_NUM_THREADS", "GOTO_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS", "NUMEXPR_NUM_THREADS")
}


def rerun_elsewhere(argv: list[str], workdir: Path, out_dir: Path) -> dict[Path, Path]:
    """Run a job's command again (its provenance's argv, in a one-thread job's environment) with every output
    flag pointed into ``out_dir``; returns the job's outputs -> the rerun's."""
    out_dir.mkdir(parents=True, exist_ok=True)
    argv, moved = list(argv), {}
    for i, arg in enumerate(argv[:-1]):
        if arg.startswith("--out"):
            original = workdir / argv[i + 1]
            moved[original] = out_dir / original.name
            argv[i + 1] = str(moved[original])
    subprocess.run([sys.executable, *argv], cwd=workdir, env={**ENV, **ONE_THREAD}, check=True, capture_output=True, timeout=600)
    return moved


@pytest.mark.dag
def test_dag_a_generation_and_its_chains_metrics_rerun_to_the_same_numbers(dag_run, results, tmp_path):
    """The same config gives the same numbers: one generation trained again, and its chain's metrics computed
    again, from the commands the DAG ran, give the DAG's files byte for byte (the metrics JSON but its provenance)."""
    loop = results / "full_synthetic" / f"w{W}" / "rep0"
    generation = rerun_elsewhere(load_json(loop / f"generation_1_w{W}.json")["provenance"]["argv"], dag_run, tmp_path / "generation")
    for original, again in generation.items():
        if original.suffix in (".ckpt", ".npz"):
            assert sha256_file(again) == sha256_file(original), original.name
    metrics = rerun_elsewhere(load_json(loop / f"metrics_w{W}.json")["provenance"]["argv"], dag_run, tmp_path / "metrics")
    for original, again in metrics.items():
        if original.suffix == ".json":
            assert {**load_json(again), "provenance": None} == {**load_json(original), "provenance": None}
