"""denoise in the DAG run (tests/configs/dag.yaml): the panel QA's report of every method and gate, the leakage
check, the manifest denoised into the mirrored tree by the promoted checkpoint, both training arms per seed. Its gates
are reported, not enforced: a model trained for two epochs on a few dozen spectra says nothing about the method, so
no test here reads a finding."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import DAG_CONFIG, dag_config, job_counts, snakemake

CONFIG = dag_config()["denoise"]
PHANTOM = CONFIG["phantom"]
ONLY = ("--config", "modules=[denoise]")


@pytest.fixture(scope="module")
def results(dag_run) -> Path:
    return dag_run / "results/denoise"


@pytest.mark.dag
def test_dag_panel_qa_reports_every_gate_and_method(results):
    summary = json.loads((results / "panel_eval/panel_eval_summary.json").read_text())
    assert [g["gate"] for g in summary["gates"]] == ["psnr_gain", "sam_improvement", "roi_integrity", "downstream_proxy"]
    assert summary["passed"] == (all(g["passed"] for g in summary["gates"]) and not summary["not_discriminating"])
    assert summary["reference"] == "clean" and summary["manifest"]["n_spectra"] == PHANTOM["panel_groups"] * PHANTOM["replicates"]
    assert summary["ranked_on"] == "validation" and not summary["enforced"]  # the test config reports, not enforces
    leakage = summary["leakage"]
    assert [leakage[m]["shared_samples"] for m in ("train", "validation")] == [[], []]  # leave-sample-out
    assert [leakage[m]["duplicate_spectra"] for m in ("train", "validation")] == [0, 0]
    methods = pd.read_csv(results / "panel_eval/panel_methods_summary.csv")
    seeds = [f"seed_{s}" for s in CONFIG["train"]["seeds"]]
    expected = {"raw", "identity", "savgol", "whittaker", "wavelet", "pca"}
    expected |= {f"{s}-mamba_tiny_uv_best" for s in seeds} | {f"clean_target-{s}" for s in seeds}
    expected |= {f"noise2noise ({len(seeds)} seeds)", f"clean_target ({len(seeds)} seeds)"}
    assert set(methods["method"]) == expected and methods["psnr_db"].is_monotonic_decreasing
    assert set(summary["gaps"]) == {"gated_minus_comparison", "gated_minus_best_baseline", "gated_minus_each_baseline"}


@pytest.mark.dag
def test_dag_outputs_follow_the_published_layout(results):
    data = json.loads((results / "data/data_summary.json").read_text())
    summary = json.loads((results / "panel_eval/panel_eval_summary.json").read_text())
    per_spectrum = pd.read_csv(results / f"panel_eval/{summary['selected']}_per_spectrum_metrics.csv")
    assert per_spectrum["relative_path"].tolist() == pd.read_csv(results / "data/validation_panel.csv")["relative_path"].tolist()
    index = pd.read_csv(results / "denoised/full/denoised_manifest.csv")
    assert len(index) == data["manifest_full_rows"] and index["denoised_path"].str.endswith("_denoised.npy").all()
    assert all((results / "denoised/full" / p).is_file() for p in index["denoised_path"].unique())
    assert data["panel_rows"] == len(per_spectrum)
    for arm in ("noise2noise", "clean"):
        for seed in CONFIG["train"]["seeds"]:
            train = json.loads((results / f"train/{arm}/seed_{seed}/train_summary.json").read_text())
            assert train["target"] == arm and train["seed"] == seed and "provenance" in train
            assert len(pd.read_csv(results / f"train/{arm}/seed_{seed}/metrics.csv")) == train["epochs_run"]


@pytest.mark.dag
def test_dag_denoises_the_manifest_once_per_spectrum_with_the_promoted_checkpoint(dag_run, results):
    full = pd.read_csv(results / "data/manifest_full.csv")
    denoised = sorted(p.relative_to(results / "denoised/full").as_posix() for p in (results / "denoised/full").rglob("*_denoised.npy"))
    assert len(denoised) == full["relative_path"].nunique() < len(full)  # one file per distinct spectrum, duplicates once
    index = pd.read_csv(results / "denoised/full/denoised_manifest.csv")
    assert len(index) == len(full) and set(index["denoised_path"]) == set(denoised)
    summary = json.loads((results / "panel_eval/panel_eval_summary.json").read_text())
    selected = next(r for r in summary["ranked_checkpoints"] if r["name"] == summary["selected"])
    assert summary["promoted"] == "results/denoise/checkpoints/promoted/mamba_tiny_uv_best.pt"
    assert (dag_run / summary["promoted"]).read_bytes() == (dag_run / selected["path"]).read_bytes()
    assert (results / "figures/roi_windows.png").read_bytes()[:4] == b"\x89PNG"
    assert not list((results / "denoised/full/shards").glob("*.json"))  # temp(): gone once merged


@pytest.mark.dag
def test_dag_changed_panel_reruns_only_the_qa(dag_run, tmp_path):
    """The user's files (here the DAG run's own data, given as files): editing the panel reruns the QA and plots only.
    It works on a copy of the run, so that the other tests read the run as it was made."""
    tree = shutil.copytree(dag_run, tmp_path / "run", symlinks=True)
    data = "results/denoise/data"
    files = {
        "source": "files",
        "root_dir": f"{data}/spectra",
        "clean_dir": f"{data}/clean",
        "manifest_full": f"{data}/manifest_full.csv",
        "train_manifest": f"{data}/manifest_train.csv",
        "val_manifest": f"{data}/manifest_val.csv",
        "validation_panel": f"{data}/validation_panel.csv",
        "wavelength_grid": f"{data}/wavelength_grid.npy",
        "dose_features_csv": f"{data}/metadata/dose_features.csv",
        "dose_stats_json": f"{data}/metadata/dose_stats.json",
    }
    (tree / "files.yaml").write_text(yaml.safe_dump({"denoise": {"data": files}}))
    same = ("--configfile", DAG_CONFIG, "files.yaml", *ONLY)
    assert "Nothing to be done" in snakemake(tree, "-n", *same).stdout
    panel = tree / data / "validation_panel.csv"
    lines = panel.read_text().splitlines(keepends=True)
    panel.write_text("".join(lines[:-1]))  # one spectrum fewer
    jobs = job_counts(snakemake(tree, "-n", *same).stdout)
    # the QA reruns and, as it may promote another checkpoint, the manifest's denoising after it; training does not
    assert {rule: n for rule, n in jobs.items() if rule not in ("all", "total")} == {
        "denoise_panel_qa": 1,
        "denoise_plot_roi": 1,
        "denoise_shard": 2,
        "denoise_merge": 1,
    }
