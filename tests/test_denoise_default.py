"""The default run of denoise (the issue's "done when"): the panel QA passes its four gates, MambaUV beats the
tuned Savitzky-Golay filter, Noise2Noise comes within 0.5 dB of clean-target training, the seed's outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from conftest import ROOT

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


@pytest.fixture(scope="module")
def results(default_run) -> Path:
    return default_run / "results/denoise"


@pytest.mark.dag
def test_default_panel_qa_passes_and_the_model_beats_the_baseline(results):
    summary = json.loads((results / "panel_eval/panel_eval_summary.json").read_text())
    assert summary["passed"], summary["gates"]
    assert [g["passed"] for g in summary["gates"]] == [True] * 4
    assert summary["baseline"]["model_minus_baseline_psnr_db"] > 0.5, summary["baseline"]
    assert summary["comparison"]["gated_minus_comparison_psnr_db"] > -0.5, summary["comparison"]  # Noise2Noise within 0.5 dB
    assert summary["reference"] == "clean" and summary["manifest"]["n_spectra"] == 5 * DEFAULT["denoise"]["phantom"]["replicates"]
    methods = pd.read_csv(results / "panel_eval/panel_methods_summary.csv")
    assert methods["method"].tolist() == ["raw", "mamba_tiny_uv_best", "savgol", "clean_target"]


@pytest.mark.dag
def test_default_outputs_are_the_seeds(results):
    data = json.loads((results / "data/data_summary.json").read_text())
    assert (data["unique_spectra"], data["manifest_full_rows"], data["panel_rows"], data["wavelengths"]) == (1088, 1216, 160, 241)
    index = pd.read_csv(results / "denoised/full/denoised_manifest.csv")
    assert len(index) == 1216 and index["denoised_path"].str.endswith("_denoised.npy").all()
    assert all((results / "denoised/full" / p).is_file() for p in index["denoised_path"].unique())
    per_spectrum = pd.read_csv(results / "panel_eval/mamba_tiny_uv_best_per_spectrum_metrics.csv")
    assert per_spectrum["relative_path"].tolist() == pd.read_csv(results / "data/validation_panel.csv")["relative_path"].tolist()
    for arm in ("noise2noise", "clean"):
        summary = json.loads((results / f"train/{arm}/train_summary.json").read_text())
        assert summary["target"] == arm and "provenance" in summary
        assert len(pd.read_csv(results / f"train/{arm}/metrics.csv")) == summary["epochs_run"]
