"""genaug's augmentation config, prompt templates and GenerativeAugmentationManager.

The model folders are tiny random pipelines saved here (gensynth.genaug.tiny_sd): 16x16 DDIM pipelines
for the cache and the error paths, one tiny Stable Diffusion pipeline for the prompted path.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib
import pickle
import shutil
import subprocess
import sys
import weakref

import numpy as np
import pytest
import torch

from conftest import ENV, ROOT
from gensynth.errors import GensynthError
from gensynth.genaug.augmentation import (
    MODALITIES,
    MODEL_FOLDERS,
    PHASES,
    AugmentationConfig,
    PromptTemplates,
    augmentation_configs,
    image_channels,
    model_folder,
    validate_augmentation,
)
from gensynth.genaug.manager import (
    GenerativeAugmentationManager,
    check_model_folder,
    load_pipeline,
    pipeline_bytes,
)
from gensynth.genaug.tiny_sd import build_ddim_pipeline, build_tiny_sd_pipeline

TINY_DDIM = {"image_size": 16, "block_out_channels": (16, 32)}
FAST = {"inference_steps": 2}  # few steps: these tests check plumbing, not image quality


def configs(enabled=("depth_rgb",), **settings) -> dict[str, AugmentationConfig]:
    return {m: AugmentationConfig(enabled=m in enabled, **{**FAST, **settings}) for m in MODALITIES}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> pathlib.Path:
    """The group's nine model folders as tiny DDIM pipelines: rgb_* with 3 channels, the maps with 1."""
    base = tmp_path_factory.mktemp("models_5_7")
    for index, folder in enumerate(MODEL_FOLDERS):
        build_ddim_pipeline(base / folder, channels=3 if folder.startswith("rgb") else 1, seed=index, **TINY_DDIM)
    return base


@pytest.fixture(scope="module")
def sd_models(tmp_path_factory) -> pathlib.Path:
    base = tmp_path_factory.mktemp("sd_models")
    for phase in PHASES:
        build_tiny_sd_pipeline(base / f"rgb_{phase}", image_size=16, seed=0)
    return base


# -- the group's mapping, defaults and switch ------------------------------------------------------


def test_modalities_map_to_the_nine_model_folders():
    assert {model_folder(m, p) for m in MODALITIES for p in PHASES} == set(MODEL_FOLDERS)
    assert len(MODEL_FOLDERS) == 9
    assert model_folder("depth_rgb", "I") == model_folder("thermal_rgb", "I") == "rgb_I"
    assert model_folder("thermal_map", "R") == "thermal_map_R"
    assert [image_channels(m) for m in MODALITIES] == [3, 3, 1, 1]
    with pytest.raises(GensynthError, match="unknown phase 'X'|unknown phase \"X\""):
        model_folder("depth_rgb", "X")
    with pytest.raises(GensynthError, match="unknown modality"):
        model_folder("rgb", "I")


def test_defaults_are_the_production_values_and_the_switch_is_off():
    assert AugmentationConfig() == AugmentationConfig(False, 0.5, (0.01, 0.05), 10, 30, 3)
    off = augmentation_configs(None)
    assert not any(c.enabled for c in off.values())  # USE_GENERATIVE_AUGMENTATION = False
    on = augmentation_configs({"use_generative_augmentation": True})
    assert [m for m, c in on.items() if c.enabled] == ["depth_rgb"]  # the maps keep regular augmentation
    arm = augmentation_configs({"modalities": {"depth_map": {"enabled": True, "prob": 0.3}}}, use_generative_augmentation=True)
    assert [m for m, c in arm.items() if c.enabled] == ["depth_rgb", "depth_map"]
    assert arm["depth_map"].prob == 0.3 and arm["depth_map"].mix_ratio_range == (0.01, 0.05)
    assert augmentation_configs({"modalities": {"depth_rgb": {"mix_ratio_range": [0.1, 0.2]}}})["depth_rgb"].mix_ratio_range == (0.1, 0.2)


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"modalities": {"depth_rgb": {"prob": 1.5}}}, "'genaug.modalities.depth_rgb.prob' = 1.5: expected a probability in [0, 1]"),
        ({"modalities": {"thermal_map": {"prob": -0.1}}}, "'genaug.modalities.thermal_map.prob' = -0.1"),
        ({"modalities": {"depth_rgb": {"mix_ratio_range": [0.05, 0.01]}}}, "mix_ratio_range' = [0.05, 0.01]: expected low <= high"),
        ({"modalities": {"depth_rgb": {"mix_ratio_range": [0.01]}}}, "mix_ratio_range' = [0.01]: expected a pair"),
        ({"modalities": {"rgb": {}}}, "'genaug.modalities': unknown modality \"rgb\""),
        ({"modalities": {"depth_rgb": {"steps": 5}}}, "'genaug.modalities.depth_rgb': unknown key \"steps\""),
        ({"modalities": {"depth_map": {"batch_limit": 0}}}, "'genaug.modalities.depth_map.batch_limit' = 0: expected an integer >= 1"),
        ({"modalities": {"depth_rgb": {"inference_steps": True}}}, "inference_steps' = true"),
        ({"modalities": {"depth_rgb": {"max_models": 2.5}}}, "max_models' = 2.5"),
        ({"use_generative_augmentation": "yes"}, "'genaug.use_generative_augmentation' = \"yes\": expected true or false"),
        ({"prompts": {"views": {}, "phases": {}}}, "'genaug.prompts.views.rgb': expected a non-empty text"),
        ({"prompts": "missing.yaml"}, "missing.yaml: prompt templates file not found"),
    ],
)
def test_bad_values_are_one_error_naming_the_key(section, message):
    with pytest.raises(GensynthError) as error:
        validate_augmentation(section)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_augmentation_module_imports_no_torch():
    """The Snakefile validates at parse time: the config module must stay light."""
    code = (
        "import sys, gensynth.genaug, gensynth.genaug.augmentation as a; a.validate_augmentation({}); "
        "print(sorted(m for m in ('torch', 'diffusers', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.strip() == "[]"


# -- prompt templates --------------------------------------------------------------------------------


def inline_prompts(phases: dict[str, str]) -> dict:
    return {"views": {"rgb": "photo", "depth_map": "depth map", "thermal_map": "thermal image"}, "phases": phases}


def test_the_default_prompts_carry_phase_and_medical_context():
    templates = PromptTemplates.load()
    for phase, name in (("I", "inflammatory"), ("P", "proliferative"), ("R", "remodeling")):
        prompt = templates.prompt("depth_rgb", phase)
        assert name in prompt and "wound" in prompt and "{" not in prompt
        assert prompt == templates.prompt("thermal_rgb", phase)  # both draw from the rgb models
        assert templates.prompt("depth_map", phase) != prompt
    assert "granulation" in templates.prompt("depth_rgb", "P")


def test_prompt_templates_from_a_mapping_or_file(tmp_path):
    phases = {"I": "{view}, {phase_name} ({phase})", "P": "p", "R": "r"}
    assert PromptTemplates.load(inline_prompts(phases)).prompt("depth_map", "I") == "depth map, inflammatory (I)"
    path = tmp_path / "prompts.yaml"
    path.write_text(json.dumps(inline_prompts(phases)))  # JSON is YAML
    assert PromptTemplates.load(str(path)).prompt("thermal_rgb", "I") == "photo, inflammatory (I)"
    with pytest.raises(GensynthError, match=r"phases': unknown phase \"Q\""):
        PromptTemplates.load(inline_prompts({**phases, "Q": "q"}))
    with pytest.raises(GensynthError, match=r"phases.P': unknown placeholder \{stage\}"):
        PromptTemplates.load(inline_prompts({**phases, "P": "{stage}"}))
    path.write_text("views: [unclosed")
    with pytest.raises(GensynthError, match=f"{path}: not valid YAML") as error:
        PromptTemplates.load(path)
    assert "\n" not in str(error.value)


def test_the_manager_checks_the_configs_it_is_given(models):
    bad = {**configs(), "depth_rgb": AugmentationConfig(enabled=True, prob=2.0)}
    with pytest.raises(GensynthError, match=r"config key 'depth_rgb.prob' = 2.0: expected a probability"):
        GenerativeAugmentationManager(models, bad, device="cpu")
    with pytest.raises(GensynthError, match='unknown modality "rgb"'):
        GenerativeAugmentationManager(models, {"rgb": AugmentationConfig(enabled=True)}, device="cpu")
    with pytest.raises(GensynthError, match="model folder not found"):
        GenerativeAugmentationManager(models / "missing", configs(), device="cpu")


# -- generation --------------------------------------------------------------------------------------


def test_generate_is_seeded_and_independent_of_batch_size(models):
    manager = GenerativeAugmentationManager(models, configs(enabled=("depth_rgb", "thermal_rgb", "depth_map")), device="cpu")
    images = manager.generate("depth_rgb", "I", 3, seed=7)
    assert images.shape == (3, 3, 16, 16) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1 and images.std() > 0
    np.testing.assert_array_equal(manager.generate("depth_rgb", "I", 3, seed=7), images)
    # Image i comes from its own seed; another batch size only changes the convolutions' float32 summation order.
    np.testing.assert_allclose(manager.generate("depth_rgb", "I", 2, seed=7), images[:2], atol=1e-5)
    assert not np.allclose(manager.generate("depth_rgb", "I", 3, seed=8), images, atol=1e-3)
    assert not np.allclose(images[0], images[1], atol=1e-3)
    np.testing.assert_array_equal(manager.generate("thermal_rgb", "I", 3, seed=7), images)  # the same rgb_I model
    assert not np.allclose(manager.generate("depth_rgb", "P", 3, seed=7), images, atol=1e-3)  # another model, other noise
    maps = manager.generate("depth_map", "R", 2, seed=7, size=24)
    assert maps.shape == (2, 1, 24, 24) and maps.min() >= 0 and maps.max() <= 1


def test_generate_refuses_too_many_images_and_disabled_modalities(models):
    manager = GenerativeAugmentationManager(models, configs(batch_limit=4), device="cpu")
    assert manager.generate("depth_rgb", "P", 4, seed=0).shape[0] == 4
    assert manager.generate("depth_rgb", "P", np.int64(2), seed=np.int64(0)).shape[0] == 2  # counts computed with NumPy
    for n in (5, 0):
        with pytest.raises(GensynthError, match=f"n = {n}, expected 1 to 4"):
            manager.generate("depth_rgb", "P", n, seed=0)
    with pytest.raises(GensynthError, match="'depth_map': generative augmentation is not enabled"):
        manager.generate("depth_map", "P", 1, seed=0)
    with pytest.raises(GensynthError, match="unknown phase"):
        manager.generate("depth_rgb", "Q", 1, seed=0)
    off = GenerativeAugmentationManager(models, augmentation_configs(None), device="cpu")
    with pytest.raises(GensynthError, match="enabled: none"):
        off.generate("depth_rgb", "I", 1, seed=0)


def test_stable_diffusion_folder_is_prompted_end_to_end(sd_models):
    """Load (fp32 on the CPU, no safety checker), prompt with the phase, sample, evict."""
    phases = {"I": "an {phase_name} wound", "P": "a granulating wound", "R": "a scar"}
    manager = GenerativeAugmentationManager(sd_models, configs(), device="cpu", prompts=inline_prompts(phases))
    images = manager.generate("depth_rgb", "I", 2, seed=3)
    assert images.shape == (2, 3, 16, 16) and images.min() >= 0 and images.max() <= 1
    np.testing.assert_array_equal(manager.generate("depth_rgb", "I", 2, seed=3), images)
    model = manager.get_pipeline("depth_rgb", "I")
    assert model.prompted and type(model.pipeline).__name__ == "StableDiffusionPipeline"
    assert model.pipeline.safety_checker is None and model.pipeline.unet.dtype == torch.float32
    # The prompt reaches the model: the same seed under another prompt gives other images.
    reworded = GenerativeAugmentationManager(sd_models, configs(), device="cpu", prompts=inline_prompts({**phases, "I": "a dry scab"}))
    assert not np.allclose(reworded.generate("depth_rgb", "I", 2, seed=3), images, atol=1e-4)
    tensors = [weakref.ref(p) for p in model.pipeline.unet.parameters()]
    del model
    manager.close()
    assert manager.cache_info().loaded == () and all(ref() is None for ref in tensors)


# -- the LRU cache -----------------------------------------------------------------------------------


def test_lru_evicts_the_least_recently_used_folder(models):
    manager = GenerativeAugmentationManager(models, configs(enabled=("depth_rgb", "depth_map"), max_models=2), device="cpu")
    for phase in ("I", "P", "I", "R"):  # I is used again after P: P is the least recently used when R loads
        manager.get_pipeline("depth_rgb", phase)
    info = manager.cache_info()
    assert info.loaded == ("rgb_I", "rgb_R")
    assert (info.hits, info.misses, info.loads, info.evictions) == (1, 3, 3, 1) and info.hit_rate == 0.25
    manager.get_pipeline("depth_rgb", "R")  # a hit moves R to the end
    manager.get_pipeline("depth_map", "P")
    assert manager.stats.loaded == ("rgb_R", "depth_map_P")
    assert manager.stats.as_dict()["hit_rate"] == pytest.approx(2 / 6)


def test_max_models_is_the_strictest_enabled_limit(models):
    config = configs(enabled=("depth_rgb", "depth_map"))
    config["depth_map"] = dataclasses.replace(config["depth_map"], max_models=1)
    config["thermal_map"] = dataclasses.replace(config["thermal_map"], max_models=1, enabled=False)
    assert GenerativeAugmentationManager(models, config, device="cpu").max_models == 1
    assert GenerativeAugmentationManager(models, configs(max_models=5), device="cpu").max_models == 5


def test_eviction_frees_the_pipelines_memory(models):
    manager = GenerativeAugmentationManager(models, configs(max_models=2), device="cpu")
    tensors = {}
    for phase in ("I", "P"):
        pipeline = manager.get_pipeline("depth_rgb", phase).pipeline
        tensors[phase] = [weakref.ref(t) for t in (*pipeline.unet.parameters(), *pipeline.unet.buffers())]
        assert manager.loaded_bytes() >= pipeline_bytes(pipeline) > 0
        pipeline.unet.hooks = [pipeline.unet]  # a reference cycle, as hooks make: only the cycle collector frees it
    del pipeline
    manager.get_pipeline("depth_rgb", "R")  # evicts rgb_I
    alive = {phase: sum(ref() is not None for ref in refs) for phase, refs in tensors.items()}
    assert alive == {"I": 0, "P": len(tensors["P"])}
    manager.close()
    assert all(ref() is None for ref in tensors["P"]) and manager.loaded_bytes() == 0
    assert manager.cache_info().evictions == 3


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_eviction_frees_gpu_memory(models):
    manager = GenerativeAugmentationManager(models, configs(max_models=1), device="cuda")
    manager.generate("depth_rgb", "I", 2, seed=0)
    assert manager.get_pipeline("depth_rgb", "I").pipeline.unet.dtype == torch.float16
    torch.cuda.synchronize()
    held, one_model = torch.cuda.memory_allocated(), manager.loaded_bytes()
    manager.close()
    assert torch.cuda.memory_allocated() <= held - one_model


# -- bad model folders -------------------------------------------------------------------------------


class WritesOnUnpickle:
    """A pickle that leaves a file behind if anything ever unpickles it."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def break_folder(folder: pathlib.Path, how: str, marker: pathlib.Path) -> None:
    unet = folder / "unet"
    weights = unet / "diffusion_pytorch_model.safetensors"
    if how == "missing":
        shutil.rmtree(folder)
    elif how == "no model_index.json":
        (folder / "model_index.json").unlink()
    elif how == "single-file checkpoint":
        shutil.rmtree(folder)
        folder.mkdir()
        (folder / "model.ckpt").write_bytes(b"checkpoint")
    elif how == "model_index.json not JSON":
        (folder / "model_index.json").write_text("{not json")
    elif how == "unknown pipeline class":
        index = json.loads((folder / "model_index.json").read_text())
        (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "NoSuchPipeline"}))
    elif how == "component missing":
        shutil.rmtree(unet)
    elif how == "weights missing":
        weights.unlink()
    elif how == "pickle only":
        weights.unlink()
        (unet / "diffusion_pytorch_model.bin").write_bytes(pickle.dumps(WritesOnUnpickle(marker)))
    elif how == "truncated weights":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    elif how == "weights of another format":
        weights.write_bytes(b"PK\x03\x04 not safetensors" * 8)


BAD_FOLDERS = {
    "missing": "rgb_I: model folder not found",
    "no model_index.json": "rgb_I: no model_index.json",
    "single-file checkpoint": "it holds model.ckpt, a single-file checkpoint",
    "model_index.json not JSON": "rgb_I/model_index.json: not valid JSON",
    "unknown pipeline class": "_class_name 'NoSuchPipeline' is no diffusers pipeline class",
    "component missing": "rgb_I/unet: component folder missing",
    "weights missing": "rgb_I/unet: model weights missing",
    "pickle only": "rgb_I/unet: only a pickle checkpoint (diffusion_pytorch_model.bin), which is refused",
    "truncated weights": "diffusion_pytorch_model.safetensors: not a readable safetensors file",
    "weights of another format": "diffusion_pytorch_model.safetensors: not a readable safetensors file",
}


@pytest.mark.parametrize("how", list(BAD_FOLDERS))
def test_a_bad_model_folder_is_one_error_naming_it(models, tmp_path, how):
    base = tmp_path / "models"
    shutil.copytree(models, base)
    marker = tmp_path / "unpickled"
    break_folder(base / "rgb_I", how, marker)
    with pytest.raises(GensynthError) as error:
        GenerativeAugmentationManager(base, configs(), device="cpu")  # checked when made, before any training
    assert BAD_FOLDERS[how] in str(error.value) and str(base / "rgb_I") in str(error.value)
    with pytest.raises(GensynthError, match="rgb_I"):
        load_pipeline(base / "rgb_I", torch.device("cpu"))
    assert not marker.exists()  # nothing was unpickled


def test_a_folder_diffusers_cannot_load_is_one_error_naming_it(models, tmp_path):
    folder = tmp_path / "rgb_I"
    shutil.copytree(models / "rgb_I", folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "unet": ["diffusers", "NoSuchModel"]}))
    assert check_model_folder(folder)["_class_name"] == "DDIMPipeline"  # the layout is fine
    with pytest.raises(GensynthError, match=f"{folder}: not a loadable DDIMPipeline folder"):
        load_pipeline(folder, torch.device("cpu"))


# -- the benchmark -----------------------------------------------------------------------------------


def test_benchmark_reports_throughput_memory_and_hit_rates(tmp_path):
    out = tmp_path / "bench.json"
    small = [
        "--steps",
        "1",
        "2",
        "--batch",
        "2",
        "--repeats",
        "1",
        "--ddim-size",
        "16",
        "--ddim-channels",
        "16",
        "32",
        "--cycles",
        "1",
        "--memory-batch",
        "1",
        "--batches",
        "30",
    ]
    subprocess.run(
        [sys.executable, "scripts/bench_genaug.py", "--device", "cpu", *small, "--json", str(out)],
        cwd=ROOT,
        env=ENV,
        capture_output=True,
        check=True,
        timeout=300,
    )
    report = json.loads(out.read_text())
    for kind in ("ddim", "sd"):
        assert [row["steps"] for row in report["throughput"][kind]] == [1, 2]
        assert all(row["images_per_s"] > 0 for row in report["throughput"][kind])
    three, nine = report["memory"]
    assert (three["max_models"], three["loads"], three["evictions"]) == (3, 9, 6)
    assert (nine["max_models"], nine["loads"], nine["evictions"]) == (9, 9, 0)
    assert nine["peak_parameter_mib"] > 2 * three["peak_parameter_mib"] > 0
    default, thrashing, roomy = report["hit_rate"]
    for row in report["hit_rate"]:
        assert row["hits"] + row["misses"] == row["requests"] and row["loads"] == row["misses"]
    assert (default["loads"], default["evictions"]) == (3, 0)  # depth_rgb only: its three rgb folders fit
    assert thrashing["evictions"] == thrashing["loads"] - 3 and thrashing["hit_rate"] < roomy["hit_rate"]
    assert report["provenance"]["arguments"]["batches"] == 30
