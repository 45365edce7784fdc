"""madness in the DAG run (tests/configs/dag.yaml): every chain's files, the collapse test's report, reruns.
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
UNITS = range(CONFIG["detection"]["initial_models"])
REPLICATES = range(CONFIG["detection"]["replicates"])
CHAINS = [(u, r) for u in UNITS for r in REPLICATES]  # unit-major, as the multi-chain scripts take them


@pytest.fixture(scope="module")
def results(dag_run) -> Path:
    return dag_run / "results" / "madness"


@pytest.mark.dag
def test_dag_every_generation_has_its_metrics_spectrum_and_tsne(results):
    lenet = load_json(results / "feature_extractor" / "lenet.json")
    assert lenet["test_accuracy"] >= CONFIG["feature_extractor"]["min_accuracy"]
    probes = {u: load_npz(results / "probes" / f"unit{u}.npz") for u in UNITS}
    assert not np.array_equal(probes[0]["image_index"], probes[1]["image_index"])  # each unit its own probe draw
    count = CONFIG["jacobian"]["num_images"] * len(CONFIG["jacobian"]["timesteps"])
    dim = CONFIG["data"]["image_size"] ** 2
    generations = CONFIG["scenarios"]["full_synthetic"]["generations"]  # matched_real runs full_synthetic's loop
    for scenario in SCENARIOS:
        for u, r in CHAINS:
            loop = results / scenario / f"w{W}" / f"unit{u}" / f"rep{r}"
            chain = load_json(loop / f"metrics_w{W}.json")
            assert chain["nearest_k"] == CONFIG["metrics"]["nearest_k"] and len(chain["generations"]) == generations
            assert chain["extractor_test_accuracy"] == pytest.approx(lenet["test_accuracy"])
            for metrics in chain["generations"]:
                assert metrics["num_generated"] == CONFIG["N_eval"] and all(metrics[name]["bootstrap_std"] > 0 for name in METRICS)
            spectrum = load_npz(loop / f"jacobian_w{W}.npz")
            assert spectrum["eigenvalues"].shape == (generations, count, dim)  # exact at this size: every eigenvalue
            assert np.array_equal(spectrum["image_index"], probes[u]["image_index"])  # its own unit's probes
            assert (loop / f"tsne_w{W}.png").read_bytes()[:4] == b"\x89PNG"
            assert load_json(loop / f"generation_0_w{W}.json")["unit"] == u
        for figure in ("metrics", "spectra"):
            assert (results / "figures" / f"{scenario}_w{W}_{figure}.png").stat().st_size > 10_000
    detection = load_json(results / "full_synthetic" / f"w{W}" / f"detection_w{W}.json")
    timesteps = CONFIG["jacobian"]["timesteps"]
    assert set(METRICS) | {f"effective_rank@t={timesteps[0]}", f"trace@t={timesteps[-1]}"} <= set(detection["signals"])
    assert not any(name.startswith("spectral_entropy") for name in detection["signals"])  # exp of effective rank: dropped
    assert len(detection["provenance"]["inputs"]) == 2 * 2 * len(CHAINS)  # metrics and spectra of both scenarios' chains
    for figure in (f"full_synthetic_w{W}_signals.png", f"error_rates_w{W}.png"):
        assert (results / "figures" / figure).stat().st_size > 10_000
    table = pd.read_csv(results / f"summary_w{W}.csv")
    assert sorted(table["scenario"].unique()) == sorted(SCENARIOS)
    assert len(table) == len(SCENARIOS) * len(CHAINS) * generations
    assert sorted(set(zip(table["unit"], table["replicate"]))) == CHAINS


@pytest.mark.dag
def test_dag_matched_real_trains_on_new_real_images_of_its_unit(results):
    full = CONFIG["scenarios"]["full_synthetic"]
    used = {}
    for u, r in CHAINS:
        infos = [load_json(results / "matched_real" / f"w{W}" / f"unit{u}" / f"rep{r}" / f"generation_{g}_w{W}.json") for g in range(full["generations"])]
        assert all(info["n_synthetic"] == 0 and len(info["real_indices"]) == full["N_next"] for info in infos)
        used[u] = [set(info["real_indices"]) for info in infos]
        assert len(set().union(*used[u])) == full["N_next"] * full["generations"]  # never reused along the chain
    assert used[0] != used[1]  # each unit its own draws


@pytest.mark.dag
def test_dag_a_changed_full_synthetic_reruns_its_loop_and_its_matched_control_only(dag_run, tmp_path):
    same = ("--configfile", DAG_CONFIG)  # unchanged, nothing to do (test_dag_a_second_run_has_nothing_to_do)
    full = CONFIG["scenarios"]["full_synthetic"]
    (tmp_path / "full.yaml").write_text(yaml.safe_dump({"madness": {"scenarios": {"full_synthetic": {**full, "n_epoch": full["n_epoch"] + 1}}}}))
    output = snakemake(dag_run, "-n", *same, str(tmp_path / "full.yaml"), "--config", "modules=[madness]").stdout
    assert "scenario=full_synthetic" in output and "scenario=matched_real" in output  # matched_real runs full_synthetic's loop
    for upstream in ("madness_train_initial", "madness_sample_initial", "madness_make_probes", "madness_train_lenet"):
        assert upstream not in output, upstream


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
    loop = results / "full_synthetic" / f"w{W}" / "unit1" / "rep0"
    generation = rerun_elsewhere(load_json(loop / f"generation_1_w{W}.json")["provenance"]["argv"], dag_run, tmp_path / "generation")
    for original, again in generation.items():
        if original.suffix in (".ckpt", ".npz"):
            assert sha256_file(again) == sha256_file(original), original.name
    metrics = rerun_elsewhere(load_json(loop / f"metrics_w{W}.json")["provenance"]["argv"], dag_run, tmp_path / "metrics")
    for original, again in metrics.items():
        if original.suffix == ".json":
            assert {**load_json(again), "provenance": None} == {**load_json(original), "provenance": None}
