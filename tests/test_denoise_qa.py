"""The panel QA: the hash and the leakage check before any model loads, the checkpoints ranked on validation, every
method facing the same gates, a gate the raw spectra pass failing the QA, the outputs the group's script names."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from gensynth.denoise import inference, qa
from gensynth.denoise.data import DoseTable
from gensynth.denoise.mamba import MambaUV, MambaUVConfig
from gensynth.denoise.phantom import PhantomConfig, PhantomPaths, write_phantom
from gensynth.denoise.quality import psnr
from gensynth.denoise.settings import DenoiseTrainSettings
from gensynth.denoise.train import TrainResult, checkpoint_state
from gensynth.errors import GensynthError
from gensynth.io import save_checkpoint

sys.path.insert(0, str(ROOT / "scripts"))
import evaluate_validation_panel  # noqa: E402
import tune_baselines  # noqa: E402


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


@pytest.fixture(scope="module")
def baselines(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("baselines")
    tune_baselines.main(
        ["--train-manifest", str(corpus.manifest_train), "--root-dir", str(corpus.root), "--wavelength-grid", str(corpus.grid)]
        + ["--windows", "5", "7", "--polyorders", "2", "--lams", "10", "100", "--wavelets", "db4", "--levels", "2"]
        + ["--threshold-scales", "1.0", "--components", "2", "4", "--folds", "2", "--out", str(out / "baselines.json"), "--pca-out", str(out / "pca.npz")]
    )
    return out / "baselines.json"


def leakage_flags(paths: PhantomPaths) -> list[str]:
    return ["--train-manifest", str(paths.manifest_train), "--val-manifest", str(paths.manifest_val)]


def test_an_untrained_checkpoint_fails_the_gates_and_every_method_faces_them(corpus, baselines, tmp_path):
    save_model(corpus, tmp_path / "ckpt/untrained.pt")
    expected = hashlib.sha256(corpus.panel.read_bytes()).hexdigest()
    argv = qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", "--expected-hash", expected, "--baselines", str(baselines), *leakage_flags(corpus))
    code = evaluate_validation_panel.main([*argv, "--promote-to", str(tmp_path / "promoted.pt")])
    assert code == 1 and not (tmp_path / "promoted.pt").exists()  # a failed checkpoint is not promoted
    summary = json.loads((tmp_path / "out/panel_eval_summary.json").read_text())
    assert not summary["passed"] and summary["manifest"]["sha256"] == expected and summary["reference"] == "clean"
    gates = {g["gate"]: g for g in summary["gates"]}
    assert list(gates) == ["psnr_gain", "sam_improvement", "roi_integrity", "downstream_proxy"]
    assert gates["psnr_gain"]["value"] == pytest.approx(0.0, abs=1e-4) and not gates["psnr_gain"]["passed"]  # the untrained model is the identity
    for gate in gates.values():  # the default thresholds: raw and identity fail every gate, so each discriminates
        assert gate["discriminating"] and not gate["raw_passed"] and not gate["identity_passed"]
    assert summary["not_discriminating"] == []
    methods = pd.read_csv(tmp_path / "out/panel_methods_summary.csv")
    assert set(methods["method"]) == {"raw", "identity", "savgol", "whittaker", "wavelet", "pca", "untrained"}
    assert methods["rank"].tolist() == list(range(1, len(methods) + 1)) and methods["psnr_db"].is_monotonic_decreasing
    assert (methods["psnr_db_low"] < methods["psnr_db"]).all() and (methods["psnr_db"] < methods["psnr_db_high"]).all()
    assert set(summary["method_gates"]) == set(methods["method"])
    best = min(summary["baselines"], key=lambda name: summary["baselines"][name]["training_mse"])
    assert summary["best_baseline"] == best and summary["gaps"]["gated_minus_best_baseline"]["second"] == best
    per_spectrum = pd.read_csv(tmp_path / "out/untrained_per_spectrum_metrics.csv")
    panel = pd.read_csv(corpus.panel)
    assert per_spectrum["relative_path"].tolist() == panel["relative_path"].tolist()
    assert len(pd.read_csv(tmp_path / "out/untrained_per_group_summary.csv")) == panel["group_id"].nunique()
    preds = tmp_path / "out/untrained_panel_preds"
    assert (preds / "downstream_metrics.json").is_file() and len(list(preds.rglob("*_denoised.npy"))) == len(panel)
    assert (tmp_path / "out/panel_psnr_by_group.png").read_bytes()[:4] == b"\x89PNG"
    assert set(summary["provenance"]["inputs"]) >= {"manifest", "checkpoint untrained", "baselines", "train_manifest", "val_manifest"}


def test_a_gate_the_raw_spectra_pass_is_not_discriminating_and_fails_the_qa(corpus, tmp_path, capsys):
    save_model(corpus, tmp_path / "ckpt/untrained.pt")
    argv = qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", "--psnr-gain-min-db", "-1", *leakage_flags(corpus))
    assert evaluate_validation_panel.main([*argv, "--promote-to", str(tmp_path / "promoted.pt")]) == 1
    summary = json.loads((tmp_path / "out/panel_eval_summary.json").read_text())
    assert summary["not_discriminating"] == ["psnr_gain"] and not summary["passed"]
    assert "FAILED: gate(s) psnr_gain not discriminating" in capsys.readouterr().out
    # reported only: exit 0, and the selected checkpoint promoted with the verdict on record
    assert evaluate_validation_panel.main([*argv, "--promote-to", str(tmp_path / "promoted.pt"), "--no-enforce-gates"]) == 0
    assert (tmp_path / "promoted.pt").read_bytes() == (tmp_path / "ckpt/untrained.pt").read_bytes()


def test_checkpoints_are_ranked_on_the_validation_manifest_never_the_panel(corpus, tmp_path):
    save_model(corpus, tmp_path / "ckpt/seed_0/identity.pt")
    save_model(corpus, tmp_path / "ckpt/seed_1/noisy.pt", perturb=0.5)
    save_model(corpus, tmp_path / "comparison/seed_0/model.pt", perturb=0.1)
    save_model(corpus, tmp_path / "comparison/seed_1/model.pt", perturb=0.2)
    comparison = ["--comparison-checkpoint", str(tmp_path / "comparison/seed_0/model.pt"), str(tmp_path / "comparison/seed_1/model.pt")]
    code = evaluate_validation_panel.main(qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", "--top-k", "1", *comparison, *leakage_flags(corpus)))
    assert code == 1
    summary = json.loads((tmp_path / "out/panel_eval_summary.json").read_text())
    ranked = summary["ranked_checkpoints"]
    assert summary["ranked_on"] == "validation" and summary["ranking_manifest"] == str(corpus.manifest_val)
    assert [r["rank"] for r in ranked] == [1, 2] and ranked[0]["ranking_psnr_db"] >= ranked[1]["ranking_psnr_db"]
    assert summary["top_k"] == [ranked[0]["name"]] and summary["selected"] == ranked[0]["name"] == "seed_0-identity"
    # the ranking PSNR is the validation manifest's: recomputed here from its spectra and the identity's output
    validation = qa.Panel.load(corpus.manifest_val, corpus.root, corpus.root, corpus.clean, corpus.grid, ROOT / "resources/denoise/roi_windows.yaml")
    assert ranked[0]["ranking_psnr_db"] == pytest.approx(float(psnr(validation.inputs, validation.reference).mean()), abs=1e-3)
    for name in ("seed_0-identity", "seed_1-noisy", "clean_target-seed_0", "clean_target-seed_1"):
        assert (tmp_path / f"out/{name}_per_spectrum_metrics.csv").is_file()
    gap = summary["gaps"]["gated_minus_comparison"]
    assert gap["seeds"] == 2 and gap["low"] <= gap["mean"] <= gap["high"]
    arms = pd.read_csv(tmp_path / "out/panel_methods_summary.csv").set_index("method")
    assert arms.loc["ckpt (2 seeds)", "seeds"] == 2 and arms.loc["clean_target (2 seeds)", "kind"] == "arm"
    without = evaluate_validation_panel.main(qa_argv(corpus, tmp_path / "ckpt", tmp_path / "panel_ranked"))
    assert without == 1 and json.loads((tmp_path / "panel_ranked/panel_eval_summary.json").read_text())["ranked_on"] == "panel"


def test_listed_checkpoints_are_the_only_ones_ranked(corpus, tmp_path):
    save_model(corpus, tmp_path / "ckpt/seed_0/model.pt", perturb=0.5)
    save_model(corpus, tmp_path / "ckpt/stale.pt")  # an old output beside the run's checkpoints, better on validation
    argv = qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", *leakage_flags(corpus))
    at = argv.index("--checkpoint-dir")
    argv[at : at + 2] = ["--checkpoints", str(tmp_path / "ckpt/seed_0/model.pt")]
    evaluate_validation_panel.main(argv)
    summary = json.loads((tmp_path / "out/panel_eval_summary.json").read_text())
    assert [r["name"] for r in summary["ranked_checkpoints"]] == ["model"] and summary["selected"] == "model"


def test_a_panel_that_shares_samples_with_training_is_refused_in_one_line(corpus, tmp_path, monkeypatch):
    train = pd.read_csv(corpus.manifest_train)
    leaky = pd.concat([pd.read_csv(corpus.panel), train[train["group_id"] == train["group_id"].iloc[0]]])
    leaky.to_csv(tmp_path / "leaky_panel.csv", index=False)
    (tmp_path / "ckpt").mkdir()
    save_model(corpus, tmp_path / "ckpt/untrained.pt")
    monkeypatch.setattr(inference.Denoiser, "load", lambda *a, **k: pytest.fail("a model was loaded before the leakage check"))
    argv = qa_argv(corpus, tmp_path / "ckpt", tmp_path / "out", *leakage_flags(corpus))
    argv[argv.index("--manifest") + 1] = str(tmp_path / "leaky_panel.csv")
    with pytest.raises(GensynthError) as refused:
        evaluate_validation_panel.main(argv)
    message = str(refused.value)
    assert "\n" not in message and message.startswith(f"{tmp_path / 'leaky_panel.csv'}: the panel overlaps {corpus.manifest_train} (1 treatment/sample pair(s)")
    assert "spectra of identical content" in message and "--no-forbid-overlap" in message


def test_the_in_process_proxy_equals_the_groups_downstream_script(corpus, tmp_path):
    save_model(corpus, tmp_path / "ckpt/noisy.pt", perturb=0.05)
    script = ["--downstream-script", str(ROOT / "scripts/downstream_proxy_eval.py")]
    for out, extra in (("in_process", []), ("script", script)):
        evaluate_validation_panel.main(qa_argv(corpus, tmp_path / "ckpt", tmp_path / out, *extra))
    in_process, by_script = (json.loads((tmp_path / f"{out}/noisy_panel_preds/downstream_metrics.json").read_text()) for out in ("in_process", "script"))
    assert "provenance" in by_script and "provenance" not in in_process  # each wrote its own file
    assert by_script["checks"] == in_process["checks"] and by_script["passed"] == in_process["passed"]
    assert {c["denoised"] for c in in_process["checks"].values()} != {c["raw"] for c in in_process["checks"].values()}
