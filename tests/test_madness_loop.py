"""madness loop: scenario data, seeding per unit and replicate, one generation's script, probes, metrics,
detection, figures.

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
from gensynth.madness.data import load_images, load_real, load_real_data, save_images, save_real_data
from gensynth.madness.evaluation import METRICS, metrics_with_bootstrap, tsne_embedding
from gensynth.madness.jacobian import spectrum_stats
from gensynth.madness.loop import (
    fresh_real_indices,
    guidance_scale,
    init_seed,
    initial_seed,
    initial_set_parts,
    loop_parts,
    sample_images,
    sample_seed_parts,
    trainer_seed,
    training_set,
)
from gensynth.madness.probes import make_probes
from gensynth.metrics import fid

ROOT = Path(__file__).resolve().parents[1]
TINY_SAMPLING = ["--num-inference-steps", "3", "--max-c", "7"]
TINY_TRAIN = ["--batch-size", "16", "--lr", "0.002"]
UNITS = (0, 1)


def run_script(name: str, *args) -> int:
    """A script's main() in-process, as its command line runs it; returns the exit code."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return run_main(module.main, [str(a) for a in args])


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """8x8 digits, a LeNet, and per unit its model_initial (a tiny UNet, 50 timesteps) and 20 samples, on disk
    (``unit{u}/initial.ckpt``, ``unit{u}/initial_data.npz``)."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("madness_tiny")
    save_real_data(root / "real.npz", load_real_data("digits", 8, seed=0, max_train=80, max_test=60))
    assert run_script("madness_train_lenet", "--data", root / "real.npz", "--epochs", "2", "--out", root / "lenet.ckpt", "--out-info", root / "lenet.json") == 0
    for u in UNITS:
        unit = root / f"unit{u}"
        train = ["--data", root / "real.npz", "--unit", u, "--n-epoch", "1", "--block-out-channels", "8", "8", "--n-t", "50", *TINY_TRAIN]
        assert run_script("madness_train_initial", *train, "--device", "cpu", "--out", unit / "initial.ckpt", "--out-info", unit / "initial.json") == 0
        sample = ["--model", unit / "initial.ckpt", "--unit", u, "--n-with-w", "20", "--w", "0", *TINY_SAMPLING, "--device", "cpu"]
        assert run_script("madness_sample", *sample, "--out", unit / "initial_data.npz", "--out-info", unit / "initial_data.json") == 0
    return root


def initial(tiny, unit: int = 0) -> tuple[Path, Path]:
    """The unit's initial set and model_initial: generation 0's --synthetic and --prev-model."""
    return tiny / f"unit{unit}" / "initial_data.npz", tiny / f"unit{unit}" / "initial.ckpt"


def generation(tiny, out: Path, scenario: str, g: int, synthetic: Path | None, prev_model: Path, *extra) -> int:
    """One generation's script (N_next 10, N_eval 12); no --synthetic when ``synthetic`` is None (matched_real)."""
    out.mkdir(parents=True, exist_ok=True)
    return run_script(
        "madness_generation",
        *("--scenario", scenario, "--generation", g, "--w", "0", "--real", tiny / "real.npz"),
        *(() if synthetic is None else ("--synthetic", synthetic)),
        *("--prev-model", prev_model, "--n-epoch", "2", "--n-next", "10", "--n-eval", "12", *TINY_TRAIN, *TINY_SAMPLING, "--device", "cpu"),
        *extra,
        *("--out-model", out / f"model_{g}.ckpt", "--out-next", out / f"next_{g}.npz"),
        *("--out-eval", out / f"eval_{g}.npz", "--out-info", out / f"info_{g}.json"),
    )


# -- what each scenario trains on ----------------------------------------------------------
def test_each_scenario_trains_on_its_own_mix(tiny):
    real = load_real(tiny / "real.npz")
    synthetic = load_images(initial(tiny)[0])
    full = training_set("full_synthetic", 3, synthetic, real, 0, seed=0, unit=0)
    assert full.x.shape[0] == 20 and full.n_synthetic == 20 and len(full.real_indices) == 0
    fresh = training_set("fresh", 1, synthetic, real, 15, seed=0, unit=0)
    assert fresh.x.shape[0] == 35 and np.array_equal(fresh.real_indices, fresh_real_indices(80, 15, 1, 0, 0, "fresh"))
    assert torch.equal(fresh.x[20:], torch.from_numpy(real.x_train[fresh.real_indices]))
    augmented = training_set("augmented_synthetic", 0, synthetic, real, 0, seed=0, unit=0)
    assert augmented.x.shape[0] == 100 and torch.equal(augmented.y[20:], torch.from_numpy(real.y_train))
    with pytest.raises(GensynthError, match="scenario 'half'"):
        training_set("half", 0, synthetic, real, 0, seed=0, unit=0)


def test_matched_real_trains_on_n_next_new_real_images_of_its_unit(tiny):
    real = load_real(tiny / "real.npz")
    blocks = []
    for g in range(3):
        matched = training_set("matched_real", g, None, real, 10, seed=0, unit=0)
        assert matched.x.shape[0] == 10 and matched.n_synthetic == 0  # none synthetic
        assert np.array_equal(matched.real_indices, fresh_real_indices(80, 10, g, 0, 0, "matched_real"))  # block g of the unit's order
        assert torch.equal(matched.x, torch.from_numpy(real.x_train[matched.real_indices]))
        assert torch.equal(matched.y, torch.from_numpy(real.y_train[matched.real_indices]))
        blocks.append(matched.real_indices)
    assert len(np.unique(np.concatenate(blocks))) == 30  # never reused along the chain
    other_unit = training_set("matched_real", 0, None, real, 10, seed=0, unit=1)
    assert not np.array_equal(other_unit.real_indices, blocks[0])  # each unit its own draws


def test_new_real_images_are_never_reused_and_run_out_loudly():
    blocks = [fresh_real_indices(100, 30, g, seed=7, unit=0, scenario="fresh") for g in range(3)]
    assert all(len(b) == 30 for b in blocks)
    assert len(np.unique(np.concatenate(blocks))) == 90  # disjoint across generations
    assert np.array_equal(blocks[1], fresh_real_indices(100, 30, 1, seed=7, unit=0, scenario="fresh"))  # and reproducible
    for other in ({"seed": 8, "unit": 0, "scenario": "fresh"}, {"seed": 7, "unit": 1, "scenario": "fresh"}, {"seed": 7, "unit": 0, "scenario": "matched_real"}):
        assert not np.array_equal(blocks[0], fresh_real_indices(100, 30, 0, **other)), other
    with pytest.raises(
        GensynthError, match=r"fresh.n_real = 30: generation 3 needs 120 distinct real training images \(4 x 30\), the real training split has 100"
    ):
        fresh_real_indices(100, 30, 3, seed=7, unit=0, scenario="fresh")
    with pytest.raises(GensynthError, match=r"madness.scenarios.full_synthetic.N_next = 30: generation 3 needs 120"):
        fresh_real_indices(100, 30, 3, seed=7, unit=0, scenario="matched_real")


def test_every_seed_names_the_unit_and_the_replicate(tiny):
    chains = [(u, r) for u in UNITS for r in (0, 1)]
    assert len({loop_parts(0, "full_synthetic", 0, u, r) for u, r in chains}) == 4
    for seed_of in (trainer_seed, init_seed):
        assert len({seed_of(0, "full_synthetic", 0, u, r, 1) for u, r in chains}) == 4, seed_of.__name__
    assert len({sample_seed_parts(0, "full_synthetic", 0, u, r, 1, "next") for u, r in chains}) == 4
    assert initial_seed(0, 0, "init") != initial_seed(0, 1, "init") and initial_seed(0, 0, "train") != initial_seed(0, 1, "train")
    assert initial_set_parts(0, 0, "initial", 0) != initial_set_parts(0, 1, "initial", 0)
    # each unit is an independent initial model: its own weights, its own initial set, its own probes
    first, second = (load_model_checkpoint(initial(tiny, u)[1]).model.state_dict() for u in UNITS)
    assert not all(torch.equal(first[name], second[name]) for name in first)
    assert not np.array_equal(load_images(initial(tiny, 0)[0])[0], load_images(initial(tiny, 1)[0])[0])
    real = load_real(tiny / "real.npz")
    probes = [make_probes(real, 4, [5, 40], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3, unit=u) for u in UNITS]
    assert not np.array_equal(probes[0]["image_index"], probes[1]["image_index"]) and not np.array_equal(probes[0]["noise"], probes[1]["noise"])
    assert probes[0]["labels"].tolist() == probes[1]["labels"].tolist()  # the same classes in turn


# -- sampling --------------------------------------------------------------------------------
def test_each_image_depends_only_on_its_own_seed(tiny):
    model = load_model_checkpoint(initial(tiny)[1])
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
        assert generation(tiny, tmp_path / run, "full_synthetic", 0, *initial(tiny)) == 0
    for name in ("next_0.npz", "eval_0.npz"):
        a, b = load_npz(tmp_path / "a" / name), load_npz(tmp_path / "b" / name)
        assert all(np.array_equal(a[k], b[k]) for k in a), name  # same config and seed, same arrays
    model_a, model_b = (load_model_checkpoint(tmp_path / run / "model_0.ckpt") for run in "ab")
    assert all(torch.equal(p, q) for p, q in zip(model_a.model.state_dict().values(), model_b.model.state_dict().values()))
    x_next, y_next = load_images(tmp_path / "a" / "next_0.npz")
    assert x_next.shape == (10, 1, 8, 8) and load_images(tmp_path / "a" / "eval_0.npz")[0].shape == (12, 1, 8, 8)
    info = load_json(tmp_path / "a" / "info_0.json")
    initial_steps = load_model_checkpoint(initial(tiny)[1]).state["trainer"]["step"]
    # warm start: the parent's optimizer and EMA go on; N_next = 10 of the initial set's 20 images at batch 16 = 1 step per epoch
    assert info["n_synthetic"] == 10 and info["n_real"] == 0 and info["steps"] == initial_steps + 2
    assert (info["unit"], info["replicate"]) == (0, 0)
    # generation 1 reads generation 0's 10 images
    assert generation(tiny, tmp_path / "a", "full_synthetic", 1, tmp_path / "a" / "next_0.npz", tmp_path / "a" / "model_0.ckpt") == 0
    assert load_json(tmp_path / "a" / "info_1.json")["n_synthetic"] == 10
    # cold start: a fresh UNet, its own step count
    assert generation(tiny, tmp_path / "cold", "full_synthetic", 0, *initial(tiny), "--no-warm-start") == 0
    assert load_json(tmp_path / "cold" / "info_0.json")["steps"] == 2
    assert not np.array_equal(load_images(tmp_path / "cold" / "eval_0.npz")[0], load_images(tmp_path / "a" / "eval_0.npz")[0])
    # another unit or another replicate: another chain, other samples from the same parent
    for chain in (("--unit", "1"), ("--replicate", "1")):
        assert generation(tiny, tmp_path / chain[0], "full_synthetic", 0, *initial(tiny), *chain) == 0
        assert not np.array_equal(load_images(tmp_path / chain[0] / "eval_0.npz")[0], load_images(tmp_path / "a" / "eval_0.npz")[0]), chain


def test_generation_zero_trains_on_the_first_n_next_images_of_the_initial_set(tiny, tmp_path, capsys):
    x, y = load_images(initial(tiny)[0])
    save_images(tmp_path / "first10.npz", x[:10], y[:10])
    assert generation(tiny, tmp_path / "all", "fresh", 0, *initial(tiny), "--n-real", "5") == 0
    assert generation(tiny, tmp_path / "first", "fresh", 0, tmp_path / "first10.npz", initial(tiny)[1], "--n-real", "5") == 0
    info = load_json(tmp_path / "all" / "info_0.json")
    assert info["n_synthetic"] == 10 and info["n_real"] == 5
    same = (load_model_checkpoint(tmp_path / run / "model_0.ckpt").model.state_dict() for run in ("all", "first"))
    assert all(torch.equal(p, q) for p, q in zip(*(state.values() for state in same)))  # the same 10 images, the same model
    assert generation(tiny, tmp_path, "fresh", 0, tmp_path / "first10.npz", initial(tiny)[1], "--n-real", "5", "--n-next", "11") == 2
    assert "first10.npz: holds 10 images, a generation trains on --n-next 11 of them" in capsys.readouterr().err


def test_fresh_generations_add_new_real_images(tiny, tmp_path):
    previous = initial(tiny)
    for g in range(2):
        assert generation(tiny, tmp_path, "fresh", g, *previous, "--n-real", "30") == 0
        previous = (tmp_path / f"next_{g}.npz", tmp_path / f"model_{g}.ckpt")
    used = [set(load_json(tmp_path / f"info_{g}.json")["real_indices"]) for g in range(2)]
    assert len(used[0]) == len(used[1]) == 30 and not used[0] & used[1]


def test_matched_real_generations_train_on_real_images_only(tiny, tmp_path):
    used = {}
    for u in UNITS:
        out, prev_model = tmp_path / f"unit{u}", initial(tiny, u)[1]
        for g in range(2):
            assert generation(tiny, out, "matched_real", g, None, prev_model, "--unit", u, "--n-real", "10") == 0
            prev_model = out / f"model_{g}.ckpt"
            info = load_json(out / f"info_{g}.json")
            assert (info["n_synthetic"], info["n_real"], info["unit"]) == (0, 10, u)
            assert info["real_indices"] == fresh_real_indices(80, 10, g, 0, u, "matched_real").tolist()
            assert load_images(out / f"next_{g}.npz")[0].shape == (10, 1, 8, 8)  # the same files as every scenario's
        used[u] = [set(load_json(out / f"info_{g}.json")["real_indices"]) for g in range(2)]
    assert not used[0][0] & used[0][1] and used[0] != used[1]


def test_bad_generation_inputs_are_one_clear_error(tiny, tmp_path, capsys):
    assert generation(tiny, tmp_path, "fresh", 0, *initial(tiny)) == 2
    assert "--n-real: the fresh scenario trains on n_real >= 1 new real images per generation" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "matched_real", 0, None, initial(tiny)[1]) == 2
    assert "--n-real: the matched_real scenario trains on n_real >= 1 new real images" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "full_synthetic", 0, None, initial(tiny)[1]) == 2
    assert "--synthetic: full_synthetic trains on the previous generation's samples" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "matched_real", 0, *initial(tiny), "--n-real", "10") == 2
    assert "--synthetic: matched_real trains on real images only, it takes none" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "fresh", 2, *initial(tiny), "--n-real", "30") == 2
    assert "generation 2 needs 90 distinct real training images" in capsys.readouterr().err
    assert generation(tiny, tmp_path, "full_synthetic", 1, tmp_path / "none.npz", initial(tiny)[1]) == 2
    assert "none.npz: NPZ file not found" in capsys.readouterr().err
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    assert generation(tiny, tmp_path, "full_synthetic", 0, initial(tiny)[0], tmp_path / "junk.ckpt") == 2
    assert "junk.ckpt: not a readable torch checkpoint" in capsys.readouterr().err
    assert not any(tmp_path.glob("model_*.ckpt"))  # nothing half-written


# -- probes, metrics, Jacobian, detection, figures -----------------------------------------------
def test_probes_are_fixed_noised_test_images(tiny):
    real = load_real(tiny / "real.npz")
    probes = make_probes(real, 4, [5, 40], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3, unit=0)
    again = make_probes(real, 4, [5, 40], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3, unit=0)
    assert all(np.array_equal(probes[k], again[k]) for k in probes)
    assert probes["timesteps"].tolist() == [5, 40] * 4 and probes["labels"].tolist() == [0, 0, 1, 1, 2, 2, 3, 3]
    assert np.array_equal(real.y_test[probes["image_index"]], probes["labels"])
    alpha_bar = make_train_scheduler(50).alphas_cumprod.numpy()[probes["timesteps"]][:, None, None, None]
    expected = np.sqrt(alpha_bar) * probes["x0"] + np.sqrt(1 - alpha_bar) * probes["noise"]  # DDPM eq. 4
    assert np.allclose(probes["x_t"], expected, atol=1e-6)
    with pytest.raises(GensynthError, match=r"timesteps \[5, 50\]: each must lie in \[0, n_T = 50\)"):
        make_probes(real, 4, [5, 50], n_T=50, beta_start=1e-4, beta_end=0.02, seed=3, unit=0)


def test_metric_values_match_the_formulas_and_have_a_spread():
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(120, 6)), rng.normal(0.3, 1.0, size=(90, 6))
    scores = metrics_with_bootstrap(real, fake, nearest_k=5, n_bootstrap=20, rng=np.random.default_rng(1))
    assert set(scores) == set(METRICS)
    assert scores["fid"]["value"] == pytest.approx(fid(real, fake))
    assert all(scores[name]["bootstrap_std"] > 0 for name in ("fid", "precision", "density"))
    embedding, generated = tsne_embedding(real, fake, max_points=50, perplexity=30, seed=0)
    assert embedding.shape == (100, 2) and generated.sum() == 50 and not generated[:50].any()


@pytest.fixture(scope="module")
def chains(tiny, tmp_path_factory) -> dict[str, tuple[list[Path], list[Path]]]:
    """full_synthetic and matched_real, 2 generations in each of 2 units (one replicate each), measured as the DAG
    measures them: {scenario: (metrics JSON per chain, Jacobian NPZ per chain)}, unit-major."""
    root = tmp_path_factory.mktemp("chains")
    for u in UNITS:
        probes = ["--data", tiny / "real.npz", "--unit", u, "--num-images", "3", "--timesteps", "5", "30", "--n-t", "50"]
        assert run_script("madness_make_probes", *probes, "--out", root / f"probes{u}.npz") == 0
    found = {}
    for scenario in ("full_synthetic", "matched_real"):
        metrics, jacobians = [], []
        for u in UNITS:
            out = root / scenario / f"unit{u}"
            synthetic, prev_model = initial(tiny, u)
            for g in range(2):
                if scenario == "matched_real":
                    assert generation(tiny, out, scenario, g, None, prev_model, "--unit", u, "--n-real", "10") == 0
                else:
                    assert generation(tiny, out, scenario, g, synthetic, prev_model, "--unit", u) == 0
                synthetic, prev_model = out / f"next_{g}.npz", out / f"model_{g}.ckpt"
            metrics.append(out / "metrics.json")
            jacobians.append(out / "jacobian.npz")
            inputs = ["--real", tiny / "real.npz", "--lenet", tiny / "lenet.ckpt", "--samples", out / "eval_0.npz", out / "eval_1.npz"]
            measure = ["--min-accuracy", "0", "--n-bootstrap", "5", "--tsne-points", "12", "--tsne-perplexity", "5"]
            assert run_script("madness_metrics", *inputs, *measure, "--out", metrics[-1], "--out-tsne", out / "tsne.png") == 0
            models = ["--models", out / "model_0.ckpt", out / "model_1.ckpt"]
            assert run_script("madness_jacobian", *models, "--probes", root / f"probes{u}.npz", "--device", "cpu", "--out", jacobians[-1]) == 0
        found[scenario] = (metrics, jacobians)
    return found


def group(chains, scenario: str, jacobians: bool = True) -> list:
    """A scenario's files as the multi-chain scripts take them."""
    metrics, spectra = chains[scenario]
    return ["--scenario", scenario, "--metrics", *metrics, *(["--jacobians", *spectra] if jacobians else [])]


def test_evaluation_scripts_chain_into_figures_and_the_comparison(chains, tmp_path, capsys):
    metrics, jacobians = chains["full_synthetic"]
    chain = load_json(metrics[0])
    assert len(chain["generations"]) == 2 and chain["num_real"] == 60
    assert chain["generations"][1]["num_generated"] == 12 and set(METRICS) <= set(chain["generations"][1])
    assert (metrics[0].parent / "tsne.png").read_bytes()[:4] == b"\x89PNG"
    spectrum = load_npz(jacobians[1])
    assert spectrum["eigenvalues"].shape == (2, 6, 64)  # exact: all 8 x 8 eigenvalues of 3 images x 2 timesteps, per generation
    assert np.all(np.diff(spectrum["eigenvalues"], axis=2) <= 1e-9)  # descending
    assert spectrum["trace"][1, 4] == pytest.approx(spectrum_stats(spectrum["eigenvalues"][1, 4])["trace"])
    assert not np.array_equal(spectrum["image_index"], load_npz(jacobians[0])["image_index"])  # each unit its own probes
    assert (
        run_script("madness_figures", *group(chains, "full_synthetic"), "--out-curves", tmp_path / "curves.png", "--out-spectra", tmp_path / "spectra.png") == 0
    )
    both = [*group(chains, "full_synthetic", jacobians=False), *group(chains, "matched_real", jacobians=False)]
    assert run_script("madness_compare", *both, "--replicates", "1", "--out-table", tmp_path / "summary.csv", "--out-figure", tmp_path / "fid.png") == 0
    table = (tmp_path / "summary.csv").read_text().splitlines()
    assert table[0].startswith("scenario,unit,replicate,generation,fid,") and len(table) == 1 + 2 * 2 * 2
    assert [row.split(",")[:4] for row in table[1:5]] == [["full_synthetic", str(u), "0", str(g)] for u in UNITS for g in range(2)]
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in ("curves.png", "spectra.png", "fid.png"))
    # chains that are not whole units of --replicates, and a metrics file per chain but Jacobians for fewer: refused
    assert run_script("madness_compare", *both, "--replicates", "3", "--out-table", tmp_path / "x.csv", "--out-figure", tmp_path / "x.png") == 2
    assert "--scenario full_synthetic: 2 metrics files, not units of --replicates 3 chains each" in capsys.readouterr().err
    short = ["--scenario", "full_synthetic", "--metrics", *metrics, "--jacobians", jacobians[0]]
    assert run_script("madness_figures", *short, "--out-curves", tmp_path / "x.png", "--out-spectra", tmp_path / "y.png") == 2
    assert "2 metrics files but 1 Jacobian files" in capsys.readouterr().err


def test_the_collapse_test_reads_the_chains_as_the_dag_passes_them(chains, tmp_path):
    detect = [*group(chains, "full_synthetic"), *group(chains, "matched_real"), "--initial-models", "2", "--replicates", "1", "--n-bootstrap", "10"]
    outputs = ["--out-json", tmp_path / "detection.json", "--out-figure", tmp_path / "signals.png", "--out-error-rates", tmp_path / "rates.png"]
    assert run_script("madness_detect", *detect, "--label", "w=0", *outputs) == 0
    detection = load_json(tmp_path / "detection.json")
    assert "fid" in detection["signals"] and "effective_rank@t=30" in detection["signals"]
    assert all((tmp_path / name).read_bytes()[:4] == b"\x89PNG" for name in ("signals.png", "rates.png"))
