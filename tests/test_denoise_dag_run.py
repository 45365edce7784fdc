"""denoise in the DAG run (tests/configs/dag.yaml): the panel QA's report of every method and gate, the manifest
denoised into the mirrored tree, both training arms. Its gates are opened: a model trained for two epochs on a few
dozen spectra says nothing about the method, so no test here reads a finding."""

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
    assert [g["gate"] for g in summary["gates"]] == ["psnr_gain", "sam_no_worse", "roi_integrity", "downstream_proxy"]
    assert summary["passed"] == all(g["passed"] for g in summary["gates"])
    assert summary["reference"] == "clean" and summary["manifest"]["n_spectra"] == PHANTOM["panel_groups"] * PHANTOM["replicates"]
    methods = pd.read_csv(results / "panel_eval/panel_methods_summary.csv")
    assert methods["method"].tolist() == ["raw", "mamba_tiny_uv_best", "savgol", "clean_target"]


@pytest.mark.dag
def test_dag_outputs_follow_the_published_layout(results):
    data = json.loads((results / "data/data_summary.json").read_text())
    per_spectrum = pd.read_csv(results / "panel_eval/mamba_tiny_uv_best_per_spectrum_metrics.csv")
    assert per_spectrum["relative_path"].tolist() == pd.read_csv(results / "data/validation_panel.csv")["relative_path"].tolist()
    index = pd.read_csv(results / "denoised/full/denoised_manifest.csv")
    assert len(index) == data["manifest_full_rows"] and index["denoised_path"].str.endswith("_denoised.npy").all()
    assert all((results / "denoised/full" / p).is_file() for p in index["denoised_path"].unique())
    assert data["panel_rows"] == len(per_spectrum)
    for arm in ("noise2noise", "clean"):
        summary = json.loads((results / f"train/{arm}/train_summary.json").read_text())
        assert summary["target"] == arm and "provenance" in summary
        assert len(pd.read_csv(results / f"train/{arm}/metrics.csv")) == summary["epochs_run"]


@pytest.mark.dag
def test_dag_denoises_the_manifest_once_per_spectrum_and_runs_the_qa(dag_run, results):
    full = pd.read_csv(results / "data/manifest_full.csv")
    denoised = sorted(p.relative_to(results / "denoised/full").as_posix() for p in (results / "denoised/full").rglob("*_denoised.npy"))
    assert len(denoised) == full["relative_path"].nunique() < len(full)  # one file per distinct spectrum, duplicates once
    index = pd.read_csv(results / "denoised/full/denoised_manifest.csv")
    assert len(index) == len(full) and set(index["denoised_path"]) == set(denoised)
    summary = json.loads((results / "panel_eval/panel_eval_summary.json").read_text())
    assert summary["selected"] == "mamba_tiny_uv_best" and summary["comparison"]["name"] == "clean_target"
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
    assert {rule: n for rule, n in jobs.items() if rule not in ("all", "total")} == {"denoise_panel_qa": 1, "denoise_plot_roi": 1}
