"""madness loop: scenario data, seeding, one generation's script, probes, metrics, detection, figures.

Everything runs on 8x8 digits and a tiny UNet, so the module's unit tests stay fast.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from gensynth.cli import run_main
from gensynth.diffusion import SamplerSettings, load_model_checkpoint, make_train_scheduler
from gensynth.errors import GensynthError
from gensynth.io import load_json, load_npz
from gensynth.madness.data import load_images, load_real, load_real_data, save_real_data
from gensynth.madness.evaluation import METRICS, metrics_with_bootstrap, tsne_embedding
from gensynth.madness.jacobian import spectrum_stats
from gensynth.madness.loop import fresh_real_indices, guidance_scale, sample_images, training_set
from gensynth.madness.probes import make_probes
from gensynth.metrics import fid

ROOT = Path(__file__).resolve().parents[1]
TINY_SAMPLING = ["--num-inference-steps", "3", "--max-c", "7"]
TINY_TRAIN = ["--batch-size", "16", "--lr", "0.002"]


def run_script(name: str, *args) -> int:
    """A script's main() in-process, as its command line runs it; returns the exit code."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return run_main(module.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """8x8 digits, a LeNet, model_initial (a tiny UNet, 50 timesteps) and its 20 samples, on disk."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("madness_tiny")
    save_real_data(root / "real.npz", load_real_data("digits", 8, seed=0, max_train=80, max_test=60))
    assert run_script("madness_train_lenet", "--data", root / "real.npz", "--epochs", "2", "--out", root / "lenet.ckpt", "--out-info", root / "lenet.json") == 0
    assert (
        run_script(
            "madness_train_initial",
            "--data",
            root / "real.npz",
            "--n-epoch",
            "1",
            "--block-out-channels",
            "8",
            "8",
            "--n-t",
            "50",
            *TINY_TRAIN,
            "--device",
            "cpu",
            "--out",
            root / "initial.ckpt",
            "--out-info",
            root / "initial.json",
        )
        == 0
    )
    assert (
        run_script(
            "madness_sample",
            "--model",
            root / "initial.ckpt",
            "--n-with-w",
            "20",
            "--w",
            "0",
            *TINY_SAMPLING,
            "--device",
            "cpu",
            "--out",
            root / "initial_data.npz",
            "--out-info",
            root / "initial_data.json",
        )
        == 0
    )
    return root


def generation(tiny, out: Path, scenario: str, g: int, synthetic: Path, prev_model: Path, *extra) -> int:
    out.mkdir(parents=True, exist_ok=True)
    return run_script(
        "madness_generation",
        "--scenario",
        scenario,
        "--generation",
        g,
        "--w",
        "0",
        "--real",
        tiny / "real.npz",
        "--synthetic",
        synthetic,
        "--prev-model",
        prev_model,
        "--n-epoch",
        "2",
        "--n-next",
        "10",
        "--n-eval",
        "12",
        *TINY_TRAIN,
        *TINY_SAMPLING,
        "--device",
        "cpu",
        *extra,
        "--out-model",
        out / f"model_{g}.ckpt",
        "--out-next",
        out / f"next_{g}.npz",
        "--out-eval",
        out / f"eval_{g}.npz",
        "--out-info",
        out / f"info_{g}.json",
    )


# -- what each scenario trains on ----------------------------------------------------------
def test_each_scenario_trains_on_its_own_mix(tiny):
    real = load_real(tiny / "real.npz")
    synthetic = load_images(tiny / "initial_data.npz")
    full = training_set("full_synthetic", 3, synthetic, real, 0, seed=0)
    assert full.x.shape[0] == 20 and full.n_synthetic == 20 and len(full.real_indices) == 0
    fresh = training_set("fresh", 1, synthetic, real, 15, seed=0)
    assert fresh.x.shape[0] == 35 and np.array_equal(fresh.real_indices, fresh_real_indices(80, 15, 1, 0))
    assert torch.equal(fresh.x[20:], torch.from_numpy(real.x_train[fresh.real_indices]))
    augmented = training_set("augmented_synthetic", 0, synthetic, real, 0, seed=0)
    assert augmented.x.shape[0] == 100 and torch.equal(augmented.y[20:], torch.from_numpy(real.y_train))
    with pytest.raises(GensynthError, match="scenario 'half'"):
        training_set("half", 0, synthetic, real, 0, seed=0)


def test_fresh_real_images_are_never_reused_and_run_out_loudly():
    blocks = [fresh_real_indices(100, 30, g, seed=7) for g in range(3)]
    assert all(len(b) == 30 for b in blocks)
    assert len(np.unique(np.concatenate(blocks))) == 90  # disjoint across generations
    assert np.array_equal(blocks[1], fresh_real_indices(100, 30, 1, seed=7))  # and reproducible
    assert not np.array_equal(blocks[0], fresh_real_indices(100, 30, 0, seed=8))
    with pytest.raises(GensynthError, match=r"generation 3 needs 120 distinct real training images \(4 x 30\), the real training split has 100"):
        fresh_real_indices(100, 30, 3, seed=7)


# -- sampling --------------------------------------------------------------------------------
def test_each_image_depends_only_on_its_own_seed(tiny):
    model = load_model_checkpoint(tiny / "initial.ckpt")
    cfg = model.scheduler_config
    x_one_batch, y = sample_images(model.model, cfg, 9, 0.0, SamplerSettings(3, 9), "s", 1)
    x_small_batches, _ = sample_images(model.model, cfg, 9, 0.0, SamplerSettings(3, 2), "s", 1)
    assert torch.allclose(torch.from_numpy(x_one_batch), torch.from_numpy(x_small_batches), atol=1e-5)
    assert np.array_equal(y, np.arange(9) % 10) and x_one_batch.min() >= -1 and x_one_batch.max() <= 1
    x_other_seed, _ = sample_images(model.model, cfg, 9, 0.0, SamplerSettings(3, 9), "s", 2)
    assert not np.allclose(x_one_batch, x_other_seed)
    # the group's w: eps = (1 + w) eps_cond - w eps_null, i.e. guidance scale 1 + w
    assert guidance_scale(0) == 1.0 and guidance_scale(0.5) == 1.5
    x_guided, _ = sample_images(model.model, cfg, 9, 2.0, SamplerSettings(3, 9), "s", 1)
    assert not np.allclose(x_one_batch, x_guided)


# -- one generation's script -------------------------------------------------------------------
def test_a_generation_is_reproducible_and_continues_its_parent(tiny, tmp_path):
    for run in ("a", "b"):
        assert generation(tiny, tmp_path / run, "full_synthetic", 0, tiny / "initial_data.npz", tiny / "initial.ckpt") == 0
    for name in ("next_0.npz", "eval_0.npz"):
        a, b = load_npz(tmp_path / "a" / name), load_npz(tmp_path / "b" / name)
        assert all(np.array_equal(a[k], b[k]) for k in a), name  # same config and seed, same arrays
    model_a, model_b = (load_model_checkpoint(tmp_path / run / "model_0.ckpt") for run in "ab")
    assert all(torch.equal(p, q) for p, q in zip(model_a.model.state_dict().values(), model_b.model.state_dict().values()))
    x_next, y_next = load_images(tmp_path / "a" / "next_0.npz")
    assert x_next.shape == (10, 1, 8, 8) and load_images(tmp_path / "a" / "eval_0.npz")[0].shape == (12, 1, 8, 8)
    info = load_json(tmp_path / "a" / "info_0.json")
    initial_steps = load_model_checkpoint(tiny / "initial.ckpt").state["trainer"]["step"]
    # warm start: the parent's optimizer and EMA go on; 20 synthetic images at batch 16 = 2 steps per epoch
    assert info["n_synthetic"] == 20 and info["n_real"] == 0 and info["steps"] == initial_steps + 4
    # generation 1 reads generation 0's 10 images
    assert generation(tiny, tmp_path / "a", "full_synthetic", 1, tmp_path / "a" / "next_0.npz", tmp_path / "a" / "model_0.ckpt") == 0
    assert load_json(tmp_path / "a" / "info_1.json")["n_synthetic"] == 10
    # cold start: a fresh UNet, its own step count
    assert generation(tiny, tmp_path / "cold", "full_synthetic", 0, tiny / "initial_data.npz", tiny / "initial.ckpt", "--no-warm-start") == 0
    assert load_json(tmp_path / "cold" / "info_0.json")["steps"] == 4
    assert not np.array_equal(load_images(tmp_path / "cold" / "eval_0.npz")[0], load_images(tmp_path / "a" / "eval_0.npz")[0])


def test_fresh_generations_add_new_real_images(tiny, tmp_path):
    previous = (tiny / "initial_data.npz", tiny / "initial.ckpt")
    for g in range(2):
        assert generation(tiny, tmp_path, "fresh", g, *previous, "--n-real", "30") == 0
        previous = (tmp_path / f"next_{g}.npz", tmp_path / f"model_{g}.ckpt")
    used = [set(load_json(tmp_path / f"info_{g}.json")["real_indices"]) for g in range(2)]
    assert len(used[0]) == len(used[1]) == 30 and not used[0] & used[1]


def test_generation_zero_can_take_the_first_images_of_the_initial_set(tiny, tmp_path, capsys):
    assert generation(tiny, tmp_path, "fresh", 0, tiny / "initial_data.npz", tiny / "initial.ckpt", "--n-real", "5", "--n-initial", "6") == 0
    info = load_json(tmp_path / "info_0.json")
    assert info["n_synthetic"] == 6 and info["n_real"] == 5
    assert generation(tiny, tmp_path, "fresh", 0, tiny / "initial_data.npz", tiny / "initial.ckpt", "--n-real", "5", "--n-initial", "21") == 2
    err = capsys.readouterr().err
    assert "--n-initial 21: " in err and "holds only 20 images" in err


def test_bad_generation_inputs_are_one_clear_error(tiny, tmp_path, capsys):
    assert generation(tiny, tmp_path, "fresh", 0, tiny / "initial_data.npz", tiny / "initial.ckpt") == 2
    assert "the fresh scenario adds n_real >= 1 new real images" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "fresh", 2, tiny / "initial_data.npz", tiny / "initial.ckpt", "--n-real", "30") == 2
    assert "generation 2 needs 90 distinct real training images" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "full_synthetic", 1, tmp_path / "none.npz", tiny / "initial.ckpt") == 2
    assert "none.npz: NPZ file not found" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert generation(tiny, tmp_path, "full_synthetic", 0, tiny / "initial_data.npz", tmp_path / "junk.ckpt") == 2
    assert "junk.ckpt: not a readable torch checkpoint" in capsys.readouterr().err
    assert not any(tmp_path.glob("model_*.ckpt"))  # nothing half-written


# -- probes, metrics, Jacobian, detection, figures -----------------------------------------------
def test_probes_are_fixed_noised_test_images(tiny):
    real = load_real(tiny / "real.npz")
    probes = make_probes(real, 4, [5, 40], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3)
    again = make_probes(real, 4, [5, 40], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3)
    assert all(np.array_equal(probes[k], again[k]) for k in probes)
    assert probes["timesteps"].tolist() == [5, 40] * 4 and probes["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.array_equal(real.y_test[probes["image_index"]], probes["labels"])
    alpha_bar = make_train_scheduler(50).alphas_cumprod.numpy()[probes["timesteps"]][:, None, None, None]
    expected = np.sqrt(alpha_bar) * probes["x0"] + np.sqrt(1 - alpha_bar) * probes["noise"]  # DDPM eq. 4
    assert np.allclose(probes["x_t"], expected, atol=1e-6)
    with pytest.raises(GensynthError, match=r"timesteps \[5, 50\]: each must lie in \[0, n_T = 50\)"):
        make_probes(real, 4, [5, 50], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3)


def test_metric_values_match_the_formulas_and_have_a_spread():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(120, 6)), rng.normal(0.3, 1.0, size=(90, 6))
    scores = metrics_with_bootstrap(real, fake, nearest_k=5, n_bootstrap=20, rng=np.random.default_rng(1))
    assert set(scores) == set(METRICS)
    assert scores["fid"]["value"] == pytest.approx(fid(real, fake))
    assert all(scores[name]["bootstrap_std"] > 0 for name in ("fid", "precision", "density"))
    embedding, generated = tsne_embedding(real, fake, max_points=50, perplexity=30, seed=0)
    assert embedding.shape == (100, 2) and generated.sum() == 50 and not generated[:50].any()


def test_evaluation_scripts_chain_into_detection_and_figures(tiny, tmp_path, capsys):
    probes = tmp_path / "probes.npz"
    assert run_script("madness_make_probes", "--data", tiny / "real.npz", "--num-images", "3", "--timesteps", "5", "30", "--n-t", "50", "--out", probes) == 0
    metrics, jacobians = [], []  # one per replicate chain
    for r in range(2):
        out = tmp_path / f"rep{r}"
        previous = (tiny / "initial_data.npz", tiny / "initial.ckpt")
        for g in range(2):
            assert generation(tiny, out, "full_synthetic", g, *previous, "--replicate", str(r)) == 0
            previous = (out / f"next_{g}.npz", out / f"model_{g}.ckpt")
        metrics.append(out / "metrics.json")
        jacobians.append(out / "jacobian.npz")
        assert (
            run_script(
                "madness_metrics",
                "--real",
                tiny / "real.npz",
                "--lenet",
                tiny / "lenet.ckpt",
                "--samples",
                out / "eval_0.npz",
                out / "eval_1.npz",
                "--min-accuracy",
                "0",
                "--n-bootstrap",
                "5",
                "--tsne-points",
                "12",
                "--tsne-perplexity",
                "5",
                "--out",
                metrics[-1],
                "--out-tsne",
                out / "tsne.png",
            )
            == 0
        )
        assert (
            run_script(
                "madness_jacobian", "--models", out / "model_0.ckpt", out / "model_1.ckpt", "--probes", probes, "--device", "cpu", "--out", jacobians[-1]
            )
            == 0
        )
    # replicates differ only by their training seed: another model and other samples from the same parent
    assert not np.array_equal(load_images(tmp_path / "rep0" / "eval_0.npz")[0], load_images(tmp_path / "rep1" / "eval_0.npz")[0])
    chain = load_json(metrics[0])
    assert len(chain["generations"]) == 2 and chain["num_real"] == 60
    assert chain["generations"][1]["num_generated"] == 12 and set(METRICS) <= set(chain["generations"][1])
    assert (tmp_path / "rep0" / "tsne.png").read_bytes()[:4] == b"\x89PNG"
    spectrum = load_npz(jacobians[1])
    assert spectrum["eigenvalues"].shape == (2, 6, 64)  # exact: all 8 x 8 eigenvalues of 3 images x 2 timesteps, per generation
    assert np.all(np.diff(spectrum["eigenvalues"], axis=2) <= 1e-9)  # descending
    assert spectrum["trace"][1, 4] == pytest.approx(spectrum_stats(spectrum["eigenvalues"][1, 4])["trace"])
    group = ["--metrics", *metrics, "--jacobians", *jacobians]
    assert (
        run_script(
            "madness_detect",
            "--scenario",
            "full_synthetic",
            *group,
            "--scenario",
            "fresh",
            *group,
            "--n-bootstrap",
            "10",
            "--out-json",
            tmp_path / "full.json",
            tmp_path / "fresh.json",
            "--out-figure",
            tmp_path / "full.png",
            tmp_path / "fresh.png",
            "--out-error-rates",
            tmp_path / "rates.png",
        )
        == 0
    )
    detection = load_json(tmp_path / "full.json")
    assert detection["num_generations"] == 2 and detection["replicates"] == 2
    assert "fid" in detection["signals"] and "effective_rank@t=30" in detection["signals"]
    assert detection["signals"]["fid"]["values"] == [[m["fid"]["value"] for m in load_json(path)["generations"]] for path in metrics]
    assert detection["error_rates"]["controls"]["fresh"]["tests"] == detection["tests"]
    assert (
        run_script(
            "madness_figures", "--scenario", "full_synthetic", *group, "--out-curves", tmp_path / "curves.png", "--out-spectra", tmp_path / "spectra.png"
        )
        == 0
    )
    assert (
        run_script(
            "madness_compare",
            "--scenario",
            "full_synthetic",
            "--metrics",
            *metrics,
            "--scenario",
            "again",
            "--metrics",
            *metrics,
            "--out-table",
            tmp_path / "summary.csv",
            "--out-figure",
            tmp_path / "fid.png",
        )
        == 0
    )
    table = (tmp_path / "summary.csv").read_text().splitlines()
    assert table[0].startswith("scenario,replicate,generation,fid,") and len(table) == 1 + 2 * 2 * 2
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in ("full.png", "rates.png", "curves.png", "spectra.png", "fid.png"))
    # a metrics file per replicate but Jacobians for fewer: refused
    assert (
        run_script(
            "madness_detect",
            "--scenario",
            "full_synthetic",
            "--metrics",
            *metrics,
            "--jacobians",
            jacobians[0],
            "--out-json",
            tmp_path / "x.json",
            "--out-figure",
            tmp_path / "x.png",
            "--out-error-rates",
            tmp_path / "y.png",
        )
        == 2
    )
    assert "2 metrics files but 1 Jacobian files" in capsys.readouterr().err
