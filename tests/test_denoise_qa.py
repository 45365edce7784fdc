"""The panel QA: the hash checked before any model loads, every checkpoint ranked, an untrained checkpoint failing
the gates with a non-zero exit, the outputs the group's script names."""

from __future__ import annotations

import hashlib
import json
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from gensynth.denoise import inference
from gensynth.denoise.data import DoseTable
from gensynth.denoise.mamba import MambaUV, MambaUVConfig
from gensynth.denoise.phantom import PhantomConfig, PhantomPaths, write_phantom
from gensynth.denoise.settings import DenoiseTrainSettings
from gensynth.denoise.train import TrainResult, checkpoint_state
from gensynth.errors import GensynthError
from gensynth.io import save_checkpoint, save_json

sys.path.insert(0, str(ROOT / "scripts"))
import evaluate_validation_panel  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> PhantomPaths:
    paths = PhantomPaths.under(tmp_path_factory.mktemp("qa_data"))
    write_phantom(
        PhantomConfig.design(
            [0.0, 1.0, 2.0, 8.0], ["A", "B"], ["G"], ["G"], angles=[0], replicates=6, wavelength_step=5.0, extra_pairing_groups=0, panel_groups=3, val_groups=1
        ),
        paths,
    )
    return paths


def save_model(paths: PhantomPaths, target, perturb: float = 0.0) -> None:
    """An untrained MambaUV (the identity: its head starts at zero), or with a random head of std ``perturb``."""
    dose = DoseTable.load(paths.dose_features, paths.dose_stats)
    config = MambaUVConfig(dose_dim=len(dose.features), d_model=4, n_layers=1, d_state=2)
    torch.manual_seed(0)
    model = MambaUV(config)
    if perturb:
        torch.nn.init.normal_(model.head.weight, std=perturb)
    result = TrainResult([], 1, 0.0, {k: v.detach().clone() for k, v in model.state_dict().items()})
    save_checkpoint(target, checkpoint_state(result, config, dose, np.load(paths.grid), DenoiseTrainSettings(), {}))


def qa_argv(paths: PhantomPaths, checkpoint_dir, out, *extra: str) -> list[str]:
    return [
        "--checkpoint-dir",
        str(checkpoint_dir),
        "--manifest",
        str(paths.panel),
        "--root-dir",
        str(paths.root),
        "--metadata",
        str(paths.dose_features),
        "--wavelength-grid",
        str(paths.grid),
        "--output-dir",
        str(out),
        "--clean-dir",
        str(paths.clean),
        "--device",
        "cpu",
        *extra,
    ]


def test_a_hash_mismatch_stops_before_any_model_loads(corpus, tmp_path, monkeypatch):
    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt/garbage.pt").write_bytes(b"not a checkpoint")

    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded before the hash check")

    monkeypatch.setattr(inference.Denoiser, "load", no_model)
    with pytest.raises(GensynthError, match=r"validation_panel.csv: SHA-256 [0-9a-f]{64} does not match --expected-hash 0{64}"):
        evaluate_validation_panel.main(qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", "--expected-hash", "0" * 64))
    assert not (tmp_path / "out").exists()


def test_an_untrained_checkpoint_fails_the_gates_with_a_nonzero_exit(corpus, tmp_path):
    save_model(corpus, tmp_path / "ckpt/untrained.pt")
    savgol = tmp_path / "savgol.json"
    save_json(savgol, {"window": 7, "polyorder": 2})
    expected = hashlib.sha256(corpus.panel.read_bytes()).hexdigest()
    code = evaluate_validation_panel.main(qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", "--expected-hash", expected, "--savgol-params", str(savgol)))
    assert code == 1
    summary = json.loads((tmp_path / "out/panel_eval_summary.json").read_text())
    assert not summary["passed"] and summary["manifest"]["sha256"] == expected and summary["reference"] == "clean"
    gates = {g["gate"]: g for g in summary["gates"]}
    assert gates["psnr_gain"]["value"] == pytest.approx(0.0, abs=1e-4) and not gates["psnr_gain"]["passed"]  # the identity
    assert not gates["downstream_proxy"]["passed"]  # no replicate variance removed
    per_spectrum = pd.read_csv(tmp_path / "out/untrained_per_spectrum_metrics.csv")
    panel = pd.read_csv(corpus.panel)
    assert per_spectrum["relative_path"].tolist() == panel["relative_path"].tolist()
    assert len(pd.read_csv(tmp_path / "out/untrained_per_group_summary.csv")) == panel["group_id"].nunique()
    preds = tmp_path / "out/untrained_panel_preds"
    assert (preds / "downstream_metrics.json").is_file() and len(list(preds.rglob("*_denoised.npy"))) == len(panel)
    methods = pd.read_csv(tmp_path / "out/panel_methods_summary.csv")
    assert methods["method"].tolist() == ["raw", "untrained", "savgol"]
    assert summary["baseline"]["model_minus_baseline_psnr_db"] < 0  # the filter beats doing nothing
    assert (tmp_path / "out/panel_psnr_by_group.png").read_bytes()[:4] == b"\x89PNG"
    assert set(summary["provenance"]["inputs"]) >= {"manifest", "checkpoint untrained", "savgol_params"}


def test_every_checkpoint_is_ranked_and_the_best_is_gated(corpus, tmp_path):
    save_model(corpus, tmp_path / "ckpt/identity.pt")
    save_model(corpus, tmp_path / "ckpt/noisy.pt", perturb=0.5)
    save_model(corpus, tmp_path / "comparison.pt", perturb=0.1)
    code = evaluate_validation_panel.main(
        qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", "--top-k", "1", "--comparison-checkpoint", str(tmp_path / "comparison.pt"))
    )
    assert code == 1
    summary = json.loads((tmp_path / "out/panel_eval_summary.json").read_text())
    ranked = summary["ranked_checkpoints"]
    assert [r["rank"] for r in ranked] == [1, 2] and ranked[0]["psnr_mean_db"] >= ranked[1]["psnr_mean_db"]
    assert summary["top_k"] == [ranked[0]["name"]] and summary["selected"] == ranked[0]["name"] == "identity"
    for name in ("identity", "noisy", "clean_target"):
        assert (tmp_path / f"out/{name}_per_spectrum_metrics.csv").is_file()
    assert summary["comparison"]["gated_minus_comparison_psnr_db"] > 0


def test_the_in_process_proxy_equals_the_groups_downstream_script(corpus, tmp_path):
    save_model(corpus, tmp_path / "ckpt/noisy.pt", perturb=0.05)
    script = ["--downstream-script", str(ROOT / "scripts/downstream_proxy_eval.py")]
    for out, extra in (("in_process", []), ("script", script)):
        evaluate_validation_panel.main(qa_argv(corpus, tmp_path / "ckpt", tmp_path / out, *extra))
    in_process, by_script = (json.loads((tmp_path / f"{out}/noisy_panel_preds/downstream_metrics.json").read_text()) for out in ("in_process", "script"))
    assert "provenance" in by_script and "provenance" not in in_process  # each wrote its own file
    assert by_script["checks"] == in_process["checks"] and by_script["passed"] == in_process["passed"]
    assert {c["denoised"] for c in in_process["checks"].values()} != {c["raw"] for c in in_process["checks"].values()}
