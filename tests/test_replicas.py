"""replicas: data formats and validation, phantom, seeding and batch independence, training resume, errors.

Everything here runs on a tiny phantom (8x8 slices) and a tiny UNet, so the module's unit tests stay fast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from gensynth.diffusion import SamplerSettings, UNetConfig, load_model_checkpoint
from gensynth.errors import GensynthError
from gensynth.io import load_npz, save_npz, sha256_file
from gensynth.replicas.data import (
    REPLICA_ARRAYS,
    condition_counts,
    load_slice_dataset,
    load_test_distribution,
    save_slice_dataset,
    save_test_distribution,
)
from gensynth.replicas.generate import META_CONFIG_KEYS, META_KEYS, META_SAMPLER_KEYS, generate_replica, plan_replica
from gensynth.replicas.phantom import PhantomConfig, make_phantom
from gensynth.replicas.qa import condition_count_mismatches, layout_problems, mask_nonempty, replica_qa
from gensynth.replicas.settings import ReplicaTrainSettings
from gensynth.replicas.train import export_model, load_model_config, train_replica_model
from gensynth.seeding import sha256_seed
from gensynth.training import Trainer

ROOT = Path(__file__).resolve().parents[1]
Z_BINS = 2
TINY_PHANTOM = PhantomConfig(image_size=8, z_bins=Z_BINS, subjects_control=3, subjects_epilepsy=3, slices_per_subject=4, lesions_epilepsy=4.0, seed=1)
TINY_UNET = UNetConfig(sample_size=8, in_channels=2, out_channels=2, num_classes=2 * Z_BINS, block_out_channels=(8, 16), attention=False)
TINY_TRAIN = ReplicaTrainSettings(epochs=2, batch_size=8, num_train_timesteps=50)


def run_script(name: str, *args: str) -> int:
    """A script's main() in-process, as its command line runs it; returns the exit code."""
    import importlib.util

    from gensynth.cli import run_main

    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return run_main(module.main, list(args))


@pytest.fixture(scope="module")
def tiny_phantom():
    return make_phantom(TINY_PHANTOM)


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, tiny_phantom):
    """A tiny trained model: (best.ckpt, config.yaml, test CSV) on disk."""
    root = tmp_path_factory.mktemp("tiny_model")
    train, test, _, _ = tiny_phantom
    save_slice_dataset(root / "train.npz", train)
    trained = train_replica_model(train, sha256_file(root / "train.npz"), Z_BINS, TINY_UNET, TINY_TRAIN, torch.device("cpu"), root / ".resume")
    export_model(trained, root / "best.ckpt", root / "config.yaml", Z_BINS, TINY_UNET, TINY_TRAIN, {"path": "train.npz"})
    save_test_distribution(root / "test.csv", condition_counts(test))
    return root


# -- test distribution CSV ---------------------------------------------------------------
def write_csv(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_csv_rows_of_one_condition_are_summed_and_sorted(tmp_path):
    path = write_csv(
        tmp_path / "t.csv",
        "zbin,lesion_present,domain,n_slices,site\n1,0,epilepsy,2,a\n0,1,control,3,a\n1,0,epilepsy,5,b\n0,0,epilepsy,0,b\n1,0,control,1,a\n",
    )
    table = load_test_distribution(path, z_bins=2)
    assert table.to_dict("records") == [
        {"zbin": 0, "lesion_present": 1, "domain": "control", "n_slices": 3},
        {"zbin": 1, "lesion_present": 0, "domain": "control", "n_slices": 1},
        {"zbin": 1, "lesion_present": 0, "domain": "epilepsy", "n_slices": 7},
    ]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("zbin,domain,n_slices\n0,control,1\n", "missing column(s) lesion_present"),
        ("zbin,lesion_present,domain,n_slices\n0,0,control,1\n4,0,control,1\n", "line 3, column 'zbin' = '4': expected an integer in 0..3"),
        ("zbin,lesion_present,domain,n_slices\n0,2,control,1\n", "column 'lesion_present' = '2'"),
        ("zbin,lesion_present,domain,n_slices\n0,0,Control,1\n", "column 'domain' = 'Control': unknown domain name, expected one of control, epilepsy"),
        ("zbin,lesion_present,domain,n_slices\n0,0,control,1.5\n", "column 'n_slices' = '1.5': expected an integer >= 0"),
        ("zbin,lesion_present,domain,n_slices\n0,0,control,-1\n", "column 'n_slices' = '-1'"),
        ("zbin,lesion_present,domain,n_slices\n0,0,control,\n", "column 'n_slices' = ''"),
        ("zbin,lesion_present,domain,n_slices\n0,0,control,0\n", "no slices to generate"),
    ],
)
def test_bad_csv_is_one_clear_error(tmp_path, text, expected):
    path = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(GensynthError) as info:
        load_test_distribution(path, z_bins=4)
    assert str(path) in str(info.value) and expected in str(info.value)


# -- slice dataset NPZ -------------------------------------------------------------------
def slice_arrays(n=6, size=8):
    rng = np.random.default_rng(0)
    masks = -np.ones((n, size, size), np.float32)
    masks[::2, 2:4, 2:4] = 1
    return {
        "images": rng.uniform(-1, 1, (n, size, size)).astype(np.float32),
        "masks": masks,
        "zbin": np.arange(n, dtype=np.int64) % 3,
        "lesion_present": (np.arange(n) % 2 == 0).astype(np.uint8),
        "domain": np.array(["control", "epilepsy"] * (n // 2)),
    }


def test_slice_dataset_loads_names_or_codes(tmp_path):
    arrays = slice_arrays()
    save_npz(tmp_path / "names.npz", arrays)
    save_npz(tmp_path / "codes.npz", {**arrays, "domain": np.array([0, 1] * 3, np.int16), "images": arrays["images"].astype(np.float16)})
    by_name, by_code = load_slice_dataset(tmp_path / "names.npz", 3), load_slice_dataset(tmp_path / "codes.npz", 3)
    np.testing.assert_array_equal(by_name.domain, [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(by_name.domain, by_code.domain)
    assert by_name.stacked().shape == (6, 2, 8, 8) and by_name.images.dtype == np.float32
    np.testing.assert_array_equal(by_name.condition_tokens(3), arrays["zbin"] + arrays["lesion_present"] * 3)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda a: a.pop("masks"), "missing array(s) masks"),
        (lambda a: a.update(masks=a["masks"][:, :4]), "'masks' has shape (6, 4, 8), expected the images' shape (6, 8, 8)"),
        (lambda a: a.update(images=a["images"][:, :, :4]), "expected (N, H, H) square slices"),
        (lambda a: a.update(images=a["images"] * 255), "'images': values span"),
        (lambda a: a.update(images=(a["images"] * 100).astype(np.uint8)), "'images': dtype uint8, expected floats"),
        (lambda a: a["images"].__setitem__((0, 0, 0), np.nan), "NaN"),
        (lambda a: a.update(zbin=a["zbin"] + 1), "'zbin': value 3 out of range, expected 0..2"),
        (lambda a: a.update(zbin=a["zbin"][:5]), "'zbin' has shape (5,), expected (6,)"),
        (lambda a: a.update(lesion_present=a["lesion_present"] * 2), "'lesion_present': value 2 out of range, expected 0..1"),
        (lambda a: a.update(domain=np.array(["control", "tumour"] * 3)), "unknown domain name 'tumour'"),
        (lambda a: a.update(domain=np.array([0, 2] * 3)), "domain code 2"),
    ],
)
def test_bad_slice_dataset_is_one_clear_error(tmp_path, change, expected):
    arrays = slice_arrays()
    change(arrays)
    save_npz(tmp_path / "bad.npz", arrays)
    with pytest.raises(GensynthError) as info:
        load_slice_dataset(tmp_path / "bad.npz", z_bins=3)
    assert str(tmp_path / "bad.npz") in str(info.value) and expected in str(info.value)


def test_pickled_slice_dataset_is_refused(tmp_path):
    path = tmp_path / "pickled.npz"
    np.savez(path, **{**slice_arrays(), "domain": np.array(["control", 1, None, 0, 1, 0], dtype=object)})
    with pytest.raises(GensynthError, match="pickled"):
        load_slice_dataset(path, z_bins=3)


# -- phantom -----------------------------------------------------------------------------
def test_phantom_is_deterministic_and_images_agree_with_masks(tiny_phantom):
    again = make_phantom(TINY_PHANTOM)
    for first, second in zip(tiny_phantom[:2], again[:2]):
        np.testing.assert_array_equal(first.images, second.images)
        np.testing.assert_array_equal(first.masks, second.masks)
    train, test, train_extra, test_extra = tiny_phantom
    assert not set(train_extra["subject"]) & set(test_extra["subject"]), "train and test share a subject"
    for split in (train, test):
        assert split.images.min() >= -1 and split.images.max() <= 1
        assert set(np.unique(split.masks)) <= {-1.0, 1.0}
        np.testing.assert_array_equal(split.lesion_present, (split.masks > 0).any(axis=(1, 2)))


def test_phantom_anatomy_changes_with_z_and_lesions_favour_epilepsy():
    train, _, extra, _ = make_phantom(PhantomConfig(image_size=32, z_bins=4, subjects_control=6, subjects_epilepsy=6, slices_per_subject=12))
    head_area = (train.images > -0.99).sum(axis=(1, 2))
    by_z = {z: head_area[np.isclose(extra["z"], z)].mean() for z in np.unique(extra["z"])}
    zs = sorted(by_z)
    assert by_z[zs[len(zs) // 2]] > 1.3 * by_z[zs[-1]], "the head must shrink towards the vertex"
    # lesions are hyperintense: brighter than any other tissue inside the head
    lesion_pixels = train.images[train.masks > 0]
    assert lesion_pixels.mean() > 0.7 > np.percentile(train.images[(train.masks < 0) & (train.images > -0.99)], 99)
    assert train.lesion_present[train.domain == 1].mean() > 2 * train.lesion_present[train.domain == 0].mean()


def test_distribution_script_counts_a_users_test_set(tmp_path, tiny_phantom, capsys):
    save_slice_dataset(tmp_path / "test.npz", tiny_phantom[1])
    test_npz = str(tmp_path / "test.npz")
    assert run_script("make_replica_data", "distribution", "--test", test_npz, "--z-bins", str(Z_BINS), "--test-csv", str(tmp_path / "t.csv")) == 0
    pd.testing.assert_frame_equal(load_test_distribution(tmp_path / "t.csv", Z_BINS), condition_counts(tiny_phantom[1]))
    # the same file against fewer z-bins: one clear error, no CSV
    assert run_script("make_replica_data", "distribution", "--test", str(tmp_path / "test.npz"), "--z-bins", "1", "--test-csv", str(tmp_path / "u.csv")) == 2
    assert "'zbin': value 1 out of range, expected 0..0" in capsys.readouterr().err and not (tmp_path / "u.csv").exists()


def test_condition_counts_round_trip_through_csv(tmp_path, tiny_phantom):
    test = tiny_phantom[1]
    save_test_distribution(tmp_path / "t.csv", condition_counts(test))
    table = load_test_distribution(tmp_path / "t.csv", Z_BINS)
    assert table["n_slices"].sum() == len(test)
    assert list(pd.read_csv(tmp_path / "t.csv").columns) == ["zbin", "lesion_present", "domain", "n_slices"]


# -- seeding and batch independence --------------------------------------------------------
DISTRIBUTION = pd.DataFrame(
    [
        {"zbin": 0, "lesion_present": 0, "domain": "control", "n_slices": 3},
        {"zbin": 0, "lesion_present": 1, "domain": "epilepsy", "n_slices": 2},
        {"zbin": 1, "lesion_present": 1, "domain": "control", "n_slices": 4},
    ]
)


def test_plan_follows_the_seed_formula():
    plan = plan_replica(DISTRIBUTION, Z_BINS, seed_base=42, replica_id=3)
    np.testing.assert_array_equal(plan["k_index"], [0, 1, 2, 0, 1, 0, 1, 2, 3])
    np.testing.assert_array_equal(plan["condition_token"], plan["zbin"] + plan["lesion_present"].astype(np.int32) * Z_BINS)
    conditions = zip(plan["zbin"], plan["lesion_present"], plan["domain"], plan["k_index"])
    expected = [sha256_seed(42, 3, int(z), int(lesion), int(d), int(k)) for z, lesion, d, k in conditions]
    assert plan["seed"].tolist() == expected
    assert (plan["replica_id"] == 3).all() and plan["domain"].tolist() == [0, 0, 0, 1, 1, 0, 0, 0, 0]
    other = plan_replica(DISTRIBUTION, Z_BINS, seed_base=42, replica_id=4)
    assert not set(plan["seed"]) & set(other["seed"])


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_samples_do_not_depend_on_the_batch(tiny_model, eta):
    """Batch 1 and batch 7: the same seeds and, within float16 rounding, the same images and masks."""
    loaded = load_model_checkpoint(tiny_model / "best.ckpt")
    plan = plan_replica(DISTRIBUTION, Z_BINS, seed_base=42, replica_id=0)
    one = generate_replica(loaded.model, loaded.scheduler_config, plan, SamplerSettings(5, 1, eta=eta))
    seven = generate_replica(loaded.model, loaded.scheduler_config, plan, SamplerSettings(5, 7, eta=eta))
    np.testing.assert_array_equal(one["seed"], seven["seed"])
    for name in ("images", "masks"):
        np.testing.assert_allclose(one[name].astype(np.float32), seven[name].astype(np.float32), atol=2e-3)
    assert np.abs(one["images"].astype(np.float32)).max() > 0.1, "samples must not be trivially constant"
    other = generate_replica(loaded.model, loaded.scheduler_config, plan_replica(DISTRIBUTION, Z_BINS, 42, 1), SamplerSettings(5, 7, eta=eta))
    assert np.abs(other["images"].astype(np.float32) - seven["images"].astype(np.float32)).mean() > 0.01


# -- the runner script ------------------------------------------------------------------------
def generate(tiny_model: Path, out: Path, *extra: str, checkpoint: Path | None = None, config: Path | None = None) -> int:
    return run_script(
        "generate_replicas",
        "--checkpoint", str(checkpoint or tiny_model / "best.ckpt"),
        "--config", str(config or tiny_model / "config.yaml"),
        "--test-csv", str(tiny_model / "test.csv"),
        "--replica-id", "2", "--out", str(out / "replica_002.npz"), "--out-meta", str(out / "replica_002_meta.json"),
        "--num-inference-steps", "3", "--device", "cpu", *extra,
    )  # fmt: skip


def test_runner_writes_the_published_layout_and_is_reproducible(tiny_model, tmp_path):
    assert generate(tiny_model, tmp_path / "a", "--batch-size", "5") == 0
    assert generate(tiny_model, tmp_path / "b", "--batch-size", "5") == 0
    arrays = load_npz(tmp_path / "a" / "replica_002.npz")
    n = int(pd.read_csv(tiny_model / "test.csv")["n_slices"].sum())
    assert list(arrays) == list(REPLICA_ARRAYS)
    assert layout_problems(arrays) == [] and arrays["images"].shape == (n, 8, 8)
    again = load_npz(tmp_path / "b" / "replica_002.npz")
    for name in REPLICA_ARRAYS:
        np.testing.assert_array_equal(arrays[name], again[name])
    meta = json.loads((tmp_path / "a" / "replica_002_meta.json").read_text())
    assert list(meta) == [*META_KEYS, "provenance"]
    assert list(meta["config"]) == META_CONFIG_KEYS and list(meta["sampler"]) == META_SAMPLER_KEYS
    assert meta["n_samples"] == n and meta["replica_id"] == 2 and meta["config"]["ema_loaded"] is True
    assert meta["domain_mapping_inverse"] == {"0": "control", "1": "epilepsy"}
    assert meta["provenance"]["inputs"]["checkpoint"]["sha256"] == sha256_file(tiny_model / "best.ckpt")
    assert meta["provenance"]["inputs"]["test_csv"]["sha256"] == sha256_file(tiny_model / "test.csv")


def test_runner_refuses_a_checkpoint_that_does_not_match_its_config(tiny_model, tmp_path, capsys):
    config = (tiny_model / "config.yaml").read_text().replace("- 16\n", "- 24\n")
    (tmp_path / "config.yaml").write_text(config)
    assert generate(tiny_model, tmp_path, config=tmp_path / "config.yaml") == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "checkpoint does not match the config (block_out_channels" in err
    assert not list(tmp_path.glob("replica_*")), "nothing is written on error"


def test_runner_refuses_truncated_or_foreign_checkpoints(tiny_model, tmp_path, capsys):
    whole = (tiny_model / "best.ckpt").read_bytes()
    (tmp_path / "truncated.ckpt").write_bytes(whole[: len(whole) // 2])
    assert generate(tiny_model, tmp_path, checkpoint=tmp_path / "truncated.ckpt") == 2
    assert "truncated.ckpt: not a readable torch checkpoint, truncated" in capsys.readouterr().err
    torch.save({"state_dict": {"w": torch.zeros(2)}}, tmp_path / "foreign.ckpt")
    assert generate(tiny_model, tmp_path, checkpoint=tmp_path / "foreign.ckpt") == 2
    assert "foreign.ckpt: not a gensynth diffusion checkpoint" in capsys.readouterr().err


def test_runner_refuses_a_checkpoint_with_objects(tiny_model, tmp_path, capsys):
    torch.save({"format": "gensynth.diffusion/1", "extra": {"when": pd.Timestamp("2025-01-01")}}, tmp_path / "evil.ckpt")
    assert generate(tiny_model, tmp_path, checkpoint=tmp_path / "evil.ckpt") == 2
    assert "refused, it holds more than tensors" in capsys.readouterr().err


def test_runner_refuses_a_csv_beyond_the_models_z_bins(tiny_model, tmp_path, capsys):
    csv = write_csv(tmp_path / "far.csv", f"zbin,lesion_present,domain,n_slices\n{Z_BINS},0,control,1\n")
    code = run_script(
        "generate_replicas", "--checkpoint", str(tiny_model / "best.ckpt"), "--config", str(tiny_model / "config.yaml"),
        "--test-csv", str(csv), "--replica-id", "0", "--out", str(tmp_path / "r.npz"), "--out-meta", str(tmp_path / "r.json"), "--device", "cpu",
    )  # fmt: skip
    assert code == 2 and f"column 'zbin' = '{Z_BINS}': expected an integer in 0..{Z_BINS - 1}" in capsys.readouterr().err


def test_model_config_must_describe_the_model(tmp_path):
    (tmp_path / "c.yaml").write_text("z_bins: 3\nunet: {sample_size: 8, in_channels: 2, out_channels: 2, num_classes: 4}\n")
    with pytest.raises(GensynthError, match="num_classes = 4, expected 2 \\* z_bins = 6"):
        load_model_config(tmp_path / "c.yaml")


# -- training ----------------------------------------------------------------------------------
def train_tiny(train, resume: Path, data_sha256: str = "sha", epochs: int = 3):
    settings = ReplicaTrainSettings(**{**TINY_TRAIN.__dict__, "epochs": epochs})
    return train_replica_model(train, data_sha256, Z_BINS, TINY_UNET, settings, torch.device("cpu"), resume, resume_every_s=0)


def test_a_killed_training_resumes_to_the_same_weights(tmp_path, tiny_phantom, monkeypatch):
    train = tiny_phantom[0]
    straight = train_tiny(train, tmp_path / ".straight.resume")
    original, calls = Trainer.train_epoch, []

    def killed_in_epoch_three(self, *tensors):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(self, *tensors)

    monkeypatch.setattr(Trainer, "train_epoch", killed_in_epoch_three)
    with pytest.raises(KeyboardInterrupt):
        train_tiny(train, tmp_path / ".killed.resume")
    monkeypatch.setattr(Trainer, "train_epoch", original)
    resumed = train_tiny(train, tmp_path / ".killed.resume")
    assert [e["epoch"] for e in resumed.history["epochs"]] == [1, 2, 3] and len(calls) == 3, "epochs 1 and 2 are not trained again"
    assert [e["val_loss"] for e in resumed.history["epochs"]] == [e["val_loss"] for e in straight.history["epochs"]]
    assert resumed.history["best_epoch"] == straight.history["best_epoch"]
    for key, value in straight.unet.state_dict().items():
        assert torch.equal(resumed.unet.state_dict()[key], value), key
    for key, value in straight.ema.items():
        assert torch.equal(resumed.ema[key], value), key
    # other data: a fresh run, not a resumed one; a state with more epochs than asked is not resumed either
    assert len(train_tiny(train, tmp_path / ".killed.resume", data_sha256="other", epochs=1).history["epochs"]) == 1
    assert len(train_tiny(train, tmp_path / ".straight.resume", epochs=2).history["epochs"]) == 2


# -- QA ------------------------------------------------------------------------------------------
def test_qa_counts_layout_and_agreement_catch_problems():
    plan = plan_replica(DISTRIBUTION, Z_BINS, 42, 0)
    n = len(plan["seed"])
    masks = -np.ones((n, 8, 8), np.float16)
    masks[plan["lesion_present"] == 1, 2:4, 2:4] = 1  # 4 lesion pixels, exactly on the lesion samples
    masks[0, 0, 0] = 1  # one stray pixel: below the minimum area
    arrays = {"images": np.zeros((n, 8, 8), np.float16), "masks": masks, **plan}
    result = replica_qa(arrays, DISTRIBUTION, Z_BINS, min_mask_pixels=2)
    assert result["counts_exact"] and result["layout_ok"] and result["lesion_agreement"] == 1.0
    assert mask_nonempty(masks, 1)[0] and not mask_nonempty(masks, 2)[0]
    masks[plan["lesion_present"] == 1] = -1  # no lesion anywhere: agreement = share of lesion-free samples
    assert replica_qa(arrays, DISTRIBUTION, Z_BINS, 2)["lesion_agreement"] == pytest.approx(3 / 9)
    short = {name: value[1:] for name, value in arrays.items()}
    assert condition_count_mismatches(short, DISTRIBUTION) == [{"zbin": 0, "lesion_present": 0, "domain": "control", "expected": 3, "generated": 2}]
    wrong = {**arrays, "seed": arrays["seed"].astype(np.uint64), "images": arrays["images"][:, 0]}
    assert layout_problems(wrong) == [
        "'images' has shape (9, 8), expected (N, H, H) with N = 9",
        "'seed' has dtype uint64, expected int64",
    ]
