"""Denoising a manifest: the mirrored tree, duplicates once, shards, resume (never trusting a half-written file or
another model's), batch-size independence, the checks against the checkpoint, the throughput figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import ROOT
from gensynth.denoise.data import DoseTable
from gensynth.denoise.inference import Denoiser, denoise_manifest, manifest_throughput, shard_stamp
from gensynth.denoise.layout import denoised_relative_path
from gensynth.denoise.mamba import MambaUV, MambaUVConfig
from gensynth.denoise.phantom import PhantomConfig, PhantomPaths, write_phantom
from gensynth.denoise.settings import DenoiseTrainSettings
from gensynth.denoise.train import TrainResult, checkpoint_state
from gensynth.errors import GensynthError
from gensynth.io import save_checkpoint

sys.path.insert(0, str(ROOT / "scripts"))
import merge_denoise_shards  # noqa: E402
import run_denoise_from_manifest  # noqa: E402


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> PhantomPaths:
    paths = PhantomPaths.under(tmp_path_factory.mktemp("infer_data"))
    write_phantom(
        PhantomConfig.design(
            [0.0, 2.0, 8.0],
            ["A", "B"],
            ["G", "I"],
            ["G", "I"],
            angles=[0, 45],
            replicates=4,
            wavelength_step=10.0,
            extra_pairing_groups=3,
            panel_groups=3,
            val_groups=1,
        ),
        paths,
    )
    return paths


def make_checkpoint(paths: PhantomPaths, target: Path, seed: int = 0) -> Path:
    """A MambaUV checkpoint with random (nonzero-head) weights: not trained, but not the identity either."""
    dose = DoseTable.load(paths.dose_features, paths.dose_stats)
    config = MambaUVConfig(dose_dim=len(dose.features), d_model=4, n_layers=1, d_state=2)
    torch.manual_seed(seed)
    model = MambaUV(config)
    for parameter in (model.head.weight, model.film.weight):
        torch.nn.init.normal_(parameter, std=0.1)
    result = TrainResult([], 1, 0.0, {k: v.detach().clone() for k, v in model.state_dict().items()})
    save_checkpoint(target, checkpoint_state(result, config, dose, np.load(paths.grid), DenoiseTrainSettings(), {}))
    return target


@pytest.fixture(scope="module")
def checkpoint(corpus, tmp_path_factory) -> Path:
    return make_checkpoint(corpus, tmp_path_factory.mktemp("ckpt") / "model.pt")


def run(corpus, checkpoint, out: Path, **options):
    return denoise_manifest(corpus.manifest_full, corpus.root, checkpoint, out, corpus.dose_features, corpus.dose_stats, **options)


def test_mirrored_tree_each_file_once_and_resume(corpus, checkpoint, tmp_path):
    manifest = pd.read_csv(corpus.manifest_full)
    files = manifest["relative_path"].unique()
    assert len(manifest) > len(files)  # the Noise2Noise duplicates
    first = run(corpus, checkpoint, tmp_path / "out")
    assert (first.rows, first.files, first.written, first.skipped) == (len(manifest), len(files), len(files), 0)
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*.npy"))
    assert written == sorted(denoised_relative_path(r) for r in files)
    assert written[0].startswith("treatment_1/A/angle_00/replicate_000_denoised.npy")
    # the model's own output, per file, with the row's dose
    denoiser = Denoiser.load(checkpoint)
    dose = denoiser.dose_table(corpus.dose_features)
    index = manifest.drop_duplicates("relative_path").reset_index(drop=True)
    spectrum = np.load(corpus.root / index["relative_path"][5])[None]
    features = dose.normalised([index["treatment"][5]], [7], corpus.manifest_full)
    np.testing.assert_allclose(np.load(tmp_path / "out" / denoised_relative_path(index["relative_path"][5])), denoiser(spectrum, features)[0], atol=1e-6)

    # a rerun skips what is finished; a half-written file (truncated) and a missing one are redone
    victim, missing = tmp_path / "out" / written[3], tmp_path / "out" / written[4]
    victim.write_bytes(victim.read_bytes()[:40])
    missing.unlink()
    again = run(corpus, checkpoint, tmp_path / "out")
    assert (again.written, again.skipped) == (2, len(files) - 2)
    assert np.load(victim).shape == (len(np.load(corpus.grid)),)


def test_another_checkpoint_redoes_every_file(corpus, checkpoint, tmp_path):
    run(corpus, checkpoint, tmp_path / "out")
    other = make_checkpoint(corpus, tmp_path / "other.pt", seed=1)
    redo = run(corpus, other, tmp_path / "out")
    assert redo.skipped == 0 and redo.written == redo.files
    stamp = json.loads(shard_stamp(tmp_path / "out", 0, 1).read_text())
    assert stamp["checkpoint_sha256"] == Denoiser.load(other).sha256


def test_shards_split_the_files_and_merge_checks_them(corpus, checkpoint, tmp_path):
    out = tmp_path / "out"
    done = []
    for shard in range(3):
        done_json = tmp_path / f"shard_{shard}.json"
        argv = [
            "--manifest",
            str(corpus.manifest_full),
            "--root-dir",
            str(corpus.root),
            "--checkpoint",
            str(checkpoint),
            "--output-root",
            str(out),
            "--dose-features-csv",
            str(corpus.dose_features),
            "--shard",
            str(shard),
            "--num-shards",
            "3",
            "--done-json",
            str(done_json),
            "--batch-size",
            "5",
            "--num-workers",
            "2",
            "--device",
            "cpu",
        ]
        assert run_denoise_from_manifest.main(argv) == 0
        done.append(done_json)
    outputs = [set(json.loads(p.read_text())["outputs"]) for p in done]
    assert not (outputs[0] & outputs[1]) and not (outputs[1] & outputs[2])
    every = {denoised_relative_path(r) for r in pd.read_csv(corpus.manifest_full)["relative_path"]}
    assert set.union(*outputs) == every
    merge = [
        "--manifest",
        str(corpus.manifest_full),
        "--output-root",
        str(out),
        "--index",
        str(tmp_path / "index.csv"),
        "--summary",
        str(tmp_path / "summary.json"),
        "--shards",
    ]
    assert merge_denoise_shards.main([*merge, *map(str, done)]) == 0
    index = pd.read_csv(tmp_path / "index.csv")
    assert len(index) == len(pd.read_csv(corpus.manifest_full)) and (index["denoised_path"].map(lambda p: (out / p).is_file())).all()
    with pytest.raises(GensynthError, match="was not written by any of the 2 shards"):
        merge_denoise_shards.main([*merge, *map(str, done[:2])])


def test_batch_size_does_not_change_the_outputs(corpus, checkpoint, tmp_path):
    run(corpus, checkpoint, tmp_path / "one", batch_size=1)
    run(corpus, checkpoint, tmp_path / "many", batch_size=64, num_workers=2)
    for path in (tmp_path / "one").rglob("*_denoised.npy"):
        np.testing.assert_allclose(np.load(path), np.load(tmp_path / "many" / path.relative_to(tmp_path / "one")), atol=1e-6)


def test_dose_stats_and_grid_must_match_the_checkpoints(corpus, checkpoint, tmp_path):
    stats = json.loads(corpus.dose_stats.read_text())
    stats["mean"]["dose"] += 1.0
    (tmp_path / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(GensynthError, match="stats.json: dose normalisation .* differs from the one .*model.pt was trained with"):
        denoise_manifest(corpus.manifest_full, corpus.root, checkpoint, tmp_path / "out", corpus.dose_features, tmp_path / "stats.json")
    denoiser = Denoiser.load(checkpoint)
    with pytest.raises(GensynthError, match="grid.npy: 30 wavelengths 200-780 nm; .*model.pt was trained on 61 wavelengths 200-800 nm"):
        denoiser.check_grid(np.arange(200.0, 800.0, 20.0), "grid.npy")
    with pytest.raises(GensynthError, match="--shard 3: expected 0 <= shard < --num-shards 3"):
        run(corpus, checkpoint, tmp_path / "out", shard=3, num_shards=3)


def test_manifest_throughput_times_a_whole_run(corpus, checkpoint, tmp_path):
    figure = manifest_throughput(corpus.manifest_full, corpus.root, checkpoint, corpus.dose_features, scratch_dir=tmp_path)
    assert figure.spectra == pd.read_csv(corpus.manifest_full)["relative_path"].nunique()
    assert figure.seconds > 0 and figure.spectra_per_s == pytest.approx(figure.spectra / figure.seconds)
    assert list(tmp_path.iterdir()) == []  # its scratch output is gone
