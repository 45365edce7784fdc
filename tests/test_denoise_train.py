"""denoise training: the checkpoint (EMA weights, config, weights_only), resuming after a kill, early stopping,
warm start (and its shape check), both targets, and the script's outputs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from gensynth.cli import run_main
from gensynth.denoise.checkpoint import build_denoiser
from gensynth.denoise.data import DoseTable, load_grid, load_manifest
from gensynth.denoise.mamba import MambaUV, MambaUVConfig
from gensynth.denoise.phantom import PhantomConfig, PhantomPaths, write_phantom
from gensynth.denoise.settings import DenoiseTrainSettings
from gensynth.denoise.train import checkpoint_state, paired_spectra, train_denoiser, warm_start
from gensynth.errors import GensynthError
from gensynth.io import save_checkpoint
from gensynth.training import Trainer

sys.path.insert(0, str(ROOT / "scripts"))
import train_denoiser as train_script  # noqa: E402

MODEL = {"d_model": 4, "n_layers": 1, "d_state": 2}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    paths = PhantomPaths.under(tmp_path_factory.mktemp("train_data"))
    config = PhantomConfig.design(
        [0.0, 2.0, 8.0],
        ["A", "B"],
        ["G", "I"],
        ["G", "I"],
        angles=[0],
        replicates=4,
        wavelength_step=10.0,
        extra_pairing_groups=1,
        panel_groups=3,
        val_groups=1,
    )
    write_phantom(config, paths)
    grid = load_grid(paths.grid)
    dose = DoseTable.load(paths.dose_features, paths.dose_stats)
    train = load_manifest(paths.manifest_train, paths.root, partners=True)
    val = load_manifest(paths.manifest_val, paths.root, partners=True)
    pairs = {
        target: (paired_spectra(train, dose, len(grid), target, paths.clean), paired_spectra(val, dose, len(grid), target, paths.clean))
        for target in ("noise2noise", "clean")
    }
    return {"paths": paths, "grid": grid, "dose": dose, "train": train, "pairs": pairs}


def model_config(data, **overrides) -> MambaUVConfig:
    return MambaUVConfig(dose_dim=len(data["dose"].features), **{**MODEL, **overrides})


def train(data, tmp_path: Path, name: str = "run", target: str = "noise2noise", **settings):
    train_pairs, val_pairs = data["pairs"][target]
    settings = DenoiseTrainSettings(target=target, **{"epochs": 3, "batch_size": 8, **settings})
    return train_denoiser(
        train_pairs, val_pairs, model_config(data), settings, torch.device("cpu"), tmp_path / f"{name}.ckpt", fingerprint={"data": "test"}, resume_every_s=0.0
    )


def test_pairs_are_the_partner_or_the_clean_spectrum(data):
    paths, manifest = data["paths"], data["train"]
    row = manifest.rows.iloc[0]
    n2n, clean = data["pairs"]["noise2noise"][0], data["pairs"]["clean"][0]
    np.testing.assert_array_equal(n2n.targets[0].numpy(), np.load(paths.root / row["n2n_partner"]).astype(np.float32))
    np.testing.assert_array_equal(clean.targets[0].numpy(), np.load(paths.clean / row["relative_path"]).astype(np.float32))
    np.testing.assert_array_equal(n2n.inputs.numpy(), clean.inputs.numpy())
    assert len(n2n.inputs) == len(manifest.rows)  # every row, the duplicates included


def test_checkpoint_holds_the_best_ema_weights_and_loads_weights_only(data, tmp_path):
    result = train(data, tmp_path)
    assert result.best_val_loss == min(h["val_loss"] for h in result.history)
    assert result.history[result.best_epoch - 1]["best"]
    config = model_config(data)
    save_checkpoint(tmp_path / "best.pt", checkpoint_state(result, config, data["dose"], data["grid"], DenoiseTrainSettings(), {}))
    state = torch.load(tmp_path / "best.pt", weights_only=True)
    assert state["model_config"] == config.to_dict() and state["dose_features"] == list(data["dose"].features)
    model = build_denoiser(state)
    for key, value in result.best_weights.items():
        assert torch.equal(model.state_dict()[key], value)
    np.testing.assert_array_equal(state["wavelength_grid"].numpy(), data["grid"])


def test_a_killed_run_resumes_to_the_same_weights(data, tmp_path, monkeypatch):
    uninterrupted = train(data, tmp_path, "whole", epochs=4)
    calls = {"n": 0}
    original = Trainer.train_epoch

    def killed_in_epoch_three(self, *tensors):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt("killed")
        return original(self, *tensors)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train(data, tmp_path, "killed", epochs=4)
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = train(data, tmp_path, "killed", epochs=4)
    assert [h["val_loss"] for h in resumed.history] == [h["val_loss"] for h in uninterrupted.history]
    assert resumed.best_epoch == uninterrupted.best_epoch
    for key, value in uninterrupted.best_weights.items():
        assert torch.equal(resumed.best_weights[key], value), key


def test_early_stopping_after_patience_epochs_without_improvement(data, tmp_path):
    result = train(data, tmp_path, lr=0.0, epochs=10, patience=2)  # nothing moves: epoch 1 stays the best
    assert result.best_epoch == 1 and len(result.history) == 3


def test_warm_start_loads_the_weights_and_refuses_another_shape(data, tmp_path):
    first = train(data, tmp_path, "first", target="clean", epochs=4, lr=0.02)
    path = tmp_path / "first.pt"
    save_checkpoint(path, checkpoint_state(first, model_config(data), data["dose"], data["grid"], DenoiseTrainSettings(), {}))
    model = MambaUV(model_config(data))
    warm_start(model, path, data["dose"])
    for key, value in first.best_weights.items():
        assert torch.equal(model.state_dict()[key], value)
    with pytest.raises(GensynthError, match=r"first.pt: a checkpoint of another shape: d_model 4 \(this run: 8\), n_layers 1 \(this run: 2\)"):
        warm_start(MambaUV(model_config(data, d_model=8, n_layers=2)), path, data["dose"])
    # a warm-started run starts from the first run's weights: with nothing moving (lr 0) it scores exactly them
    train_pairs, val_pairs = data["pairs"]["clean"]
    still = DenoiseTrainSettings(target="clean", epochs=1, batch_size=8, lr=0.0)
    warm = train_denoiser(
        train_pairs,
        val_pairs,
        model_config(data),
        still,
        torch.device("cpu"),
        tmp_path / "warm.ckpt",
        fingerprint={"data": "test"},
        init_checkpoint=path,
        dose=data["dose"],
    )
    fresh = train(data, tmp_path, "fresh", target="clean", epochs=1, lr=0.0)
    assert warm.history[0]["val_loss"] == pytest.approx(first.best_val_loss, rel=1e-6)
    assert fresh.history[0]["val_loss"] != pytest.approx(first.best_val_loss, rel=1e-3)  # (a fresh start scores otherwise)


def script_argv(paths: PhantomPaths, out: Path, *extra: str) -> list[str]:
    return [
        "--train_dir",
        str(paths.root),
        "--train_manifest",
        str(paths.manifest_train),
        "--val_manifest",
        str(paths.manifest_val),
        "--wavelength_grid",
        str(paths.grid),
        "--dose_features_csv",
        str(paths.dose_features),
        "--dose_stats_json",
        str(paths.dose_stats),
        "--log_dir",
        str(out / "log"),
        "--checkpoint_dir",
        str(out / "ckpt"),
        "--batch_size",
        "8",
        "--n_layers",
        "1",
        "--d_state",
        "2",
        "--device",
        "cpu",
        *extra,
    ]


def test_training_script_writes_checkpoint_metrics_and_audit(data, tmp_path):
    paths = data["paths"]
    argv = script_argv(paths, tmp_path, "--target", "clean", "--clean_dir", str(paths.clean), "--epochs", "2", "--d_model", "4")
    assert train_script.main(argv) == 0
    checkpoint = tmp_path / "ckpt/mamba_tiny_uv_best.pt"
    state = torch.load(checkpoint, weights_only=True)
    assert state["target"] == "clean" and state["ema"] and state["model_config"]["d_model"] == 4
    metrics = pd.read_csv(tmp_path / "log/metrics.csv")
    assert metrics["epoch"].tolist() == [1, 2] and {"train_loss", "val_loss", "lr", "best"} <= set(metrics.columns)
    audit = (tmp_path / "log/audit.log").read_text().splitlines()
    assert len(audit) == 2 and "start on" in audit[0] and "--target clean" in audit[0] and "done: 2 epochs" in audit[1]
    summary = json.loads((tmp_path / "log/train_summary.json").read_text())
    assert summary["best_epoch"] in (1, 2) and {"train_manifest", "checkpoint"} <= set(summary["provenance"]["inputs"])
    # a checkpoint of another shape as --init_checkpoint: one clear error, exit 2
    other = script_argv(paths, tmp_path / "other", "--epochs", "1", "--d_model", "8", "--init_checkpoint", str(checkpoint))
    assert run_main(train_script.main, other) == 2
