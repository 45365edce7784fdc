"""genaug's per-(modality, phase) pipelines: training data per folder, the saved folder and its loading, resume, quality."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import ROOT
from gensynth.cli import run_main
from gensynth.errors import GensynthError
from gensynth.genaug.augmentation import MODALITIES, AugmentationConfig
from gensynth.genaug.classifier import train_classifier
from gensynth.genaug.data import TRAIN, save_dataset, with_folds
from gensynth.genaug.manager import GenerativeAugmentationManager, check_model_folder
from gensynth.genaug.phantom import PhantomConfig, make_phantom
from gensynth.genaug.pipelines import save_pipeline, train_pipeline, training_images
from gensynth.genaug.quality import pipeline_quality
from gensynth.genaug.settings import ClassifierSettings, PipelineSettings
from gensynth.io import atomic_directory

TINY = PipelineSettings(block_out_channels=(8, 16), epochs=2, batch_size=8, num_train_timesteps=50)


@pytest.fixture(scope="module")
def dataset():
    return with_folds(make_phantom(PhantomConfig(patients=9, visits=3, image_size=8, seed=1)), 3, 0.2, 0)


def test_training_images_are_the_folds_training_patients_of_one_phase(dataset):
    rows = dataset.indices(0, TRAIN)
    for folder, sources in (("rgb_P", ("depth_rgb", "thermal_rgb")), ("thermal_map_P", ("thermal_map",))):
        chosen = rows[dataset.phase[rows] == 1]
        expected = np.concatenate([dataset.images[m][chosen] for m in sources])
        np.testing.assert_array_equal(training_images(dataset, 0, folder), expected)
    lonely = with_folds({**make_phantom(PhantomConfig(patients=3, visits=1, image_size=8)), "phase": np.array([0, 1, 2])}, 3, 0.0, 0)
    with pytest.raises(GensynthError, match=r"fold 0, depth_map_I: [01] training image\(s\) of phase I; expected at least 2"):
        training_images(lonely, 0, "depth_map_I")
    with pytest.raises(GensynthError, match="model folder 'rgb_X'"):
        training_images(dataset, 0, "rgb_X")


def test_a_trained_pipeline_is_saved_as_a_model_folder_and_loads_back(dataset, tmp_path):
    images = training_images(dataset, 0, "rgb_I")
    pipeline, history = train_pipeline(images, TINY, torch.device("cpu"), tmp_path / "resume.ckpt", 0, "rgb_I")
    assert [r["epoch"] for r in history] == [1, 2] and all(np.isfinite(r["loss"]) for r in history)
    folder = save_pipeline(pipeline, tmp_path / "models" / "rgb_I")
    index = check_model_folder(folder)
    assert index["_class_name"] == "DDIMPipeline" and sorted(p.name for p in folder.iterdir()) == ["model_index.json", "scheduler", "unet"]
    scheduler = json.loads((folder / "scheduler" / "scheduler_config.json").read_text())
    assert scheduler["_class_name"] == "DDIMScheduler" and scheduler["prediction_type"] == "v_prediction"
    assert scheduler["num_train_timesteps"] == 50
    # the saved weights are the EMA's (not the last step's)
    saved = load_file(folder / "unet" / "diffusion_pytorch_model.safetensors")
    for name, tensor in pipeline.unet.state_dict().items():
        torch.testing.assert_close(saved[name], tensor)
    config = {m: AugmentationConfig(enabled=m == "depth_rgb", inference_steps=3) for m in MODALITIES}
    # the manager loads it from the fold's models_5_7 with from_pretrained (the other folders exist too)
    for other in ("rgb_P", "rgb_R"):
        save_pipeline(pipeline, tmp_path / "models" / other)
    manager = GenerativeAugmentationManager(tmp_path / "models", config, device="cpu")
    samples = manager.generate("depth_rgb", "I", 4, seed=1)
    assert samples.shape == (4, 3, 8, 8) and samples.min() >= 0 and samples.max() <= 1
    np.testing.assert_array_equal(manager.generate("depth_rgb", "I", 4, seed=1), samples)


def test_a_killed_training_resumes_to_the_same_weights(dataset, tmp_path):
    images = training_images(dataset, 1, "depth_map_R")
    three = PipelineSettings(block_out_channels=(8, 16), epochs=3, batch_size=8, num_train_timesteps=50)
    straight, _ = train_pipeline(images, three, torch.device("cpu"), tmp_path / "a.ckpt", 1, "depth_map_R")
    train_pipeline(images, TINY, torch.device("cpu"), tmp_path / "b.ckpt", 1, "depth_map_R")  # killed after 2 epochs
    resumed, history = train_pipeline(images, three, torch.device("cpu"), tmp_path / "b.ckpt", 1, "depth_map_R")
    assert [r["epoch"] for r in history] == [1, 2, 3]
    for (name, a), b in zip(straight.unet.state_dict().items(), resumed.unet.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)
    # other data: no resuming from it
    _, fresh = train_pipeline(images[:-1], TINY, torch.device("cpu"), tmp_path / "b.ckpt", 1, "depth_map_R")
    assert [r["epoch"] for r in fresh] == [1, 2]


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    target = tmp_path / "rgb_I"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("first")
    with pytest.raises(RuntimeError), atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("half")
        raise RuntimeError("killed")
    assert (target / "a.txt").read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["rgb_I"]
    with atomic_directory(target) as tmp:
        (tmp / "b.txt").write_text("second")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"] and sorted(p.name for p in tmp_path.iterdir()) == ["rgb_I"]


def test_quality_rows_and_the_heldout_floor(dataset, tmp_path):
    images = training_images(dataset, 0, "rgb_R")
    pipeline, _ = train_pipeline(images, TINY, torch.device("cpu"), tmp_path / "r.ckpt", 0, "rgb_R")
    save_pipeline(pipeline, tmp_path / "models" / "rgb_R")
    trainer, _ = train_classifier(dataset, 0, 0, ClassifierSettings(width=4, epochs=1, batch_size=4), torch.device("cpu"))
    config = {m: AugmentationConfig(enabled=False) for m in MODALITIES}
    config["depth_rgb"] = config["thermal_rgb"] = AugmentationConfig(enabled=True, inference_steps=2, batch_limit=4)
    for other in ("rgb_I", "rgb_P"):  # the manager checks all three rgb folders when made
        save_pipeline(pipeline, tmp_path / "models" / other)
    three_steps = {m: dataclasses.replace(c, inference_steps=3) for m, c in config.items()}
    managers = {
        2: GenerativeAugmentationManager(tmp_path / "models", config, device="cpu"),
        3: GenerativeAugmentationManager(tmp_path / "models", three_steps, device="cpu"),
    }
    rows = pipeline_quality(managers, trainer.model, dataset, 0, "rgb_R", n_samples=6, seed=0)
    assert [(r["modality"], r["inference_steps"]) for r in rows] == [("depth_rgb", 2), ("depth_rgb", 3), ("thermal_rgb", 2), ("thermal_rgb", 3)]
    for row in rows:
        assert row["n_synthetic"] == 6 and row["phase"] == "R" and row["folder"] == "rgb_R"
        assert isinstance(row["fid_synthetic"], float) or row["note"]
    assert rows[0]["fid_heldout"] == rows[1]["fid_heldout"]  # the floor does not depend on the step count
    assert rows[0]["fid_synthetic"] != rows[1]["fid_synthetic"]  # the step count changes the samples


def test_the_training_script_writes_the_folder_and_its_history(dataset, tmp_path):
    save_dataset(tmp_path / "dataset.npz", dataset)
    spec = importlib.util.spec_from_file_location("genaug_train_pipeline", ROOT / "scripts" / "genaug_train_pipeline.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    arguments = [
        "--dataset",
        tmp_path / "dataset.npz",
        "--fold",
        "2",
        "--folder",
        "thermal_map_P",
        "--out",
        tmp_path / "fold2" / "thermal_map_P",
        "--out-info",
        tmp_path / "fold2" / "thermal_map_P.json",
        "--device",
        "cpu",
        "--block-out-channels",
        "8",
        "16",
        "--epochs",
        "1",
        "--num-train-timesteps",
        "50",
    ]
    assert run_main(module.main, [str(a) for a in arguments]) == 0
    info = json.loads((tmp_path / "fold2" / "thermal_map_P.json").read_text())
    assert info["n_images"] == len(training_images(dataset, 2, "thermal_map_P")) and len(info["history"]) == 1
    assert info["provenance"]["arguments"]["pipeline"]["block_out_channels"] == [8, 16]
    assert sorted(p.name for p in (tmp_path / "fold2").iterdir()) == ["thermal_map_P", "thermal_map_P.json"], "no resume state left"
    config = {m: AugmentationConfig(enabled=m == "thermal_map", inference_steps=2) for m in MODALITIES}
    for phase in ("I", "R"):  # the manager checks the three folders of an enabled modality
        shutil.copytree(tmp_path / "fold2" / "thermal_map_P", tmp_path / "fold2" / f"thermal_map_{phase}")
    manager = GenerativeAugmentationManager(tmp_path / "fold2", config, device="cpu")
    assert manager.generate("thermal_map", "P", 2, seed=0).shape == (2, 1, 8, 8)
