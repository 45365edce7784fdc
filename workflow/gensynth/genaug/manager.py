"""GenerativeAugmentationManager: the per-(modality, phase) pipelines, loaded on demand into an LRU cache.

The group's manager (``generative_augmentation_v2.py``): ``__init__(base_dir, config, device=None)``
loads ``base_dir / "{kind}_{phase}"`` when first asked (depth_rgb, I -> ``rgb_I``), keeps at most
``max_models`` (3) pipelines in memory and unloads the least recently used; its prompts carry the
healing phase's medical context. Here:

- a Stable Diffusion folder (model_index.json's ``_class_name`` is StableDiffusionPipeline) loads through
  ``StableDiffusionPipeline.from_pretrained`` (float16 on CUDA, float32 on the CPU, no safety checker)
  and is sampled with its phase's prompt; any other diffusers pipeline folder (e.g. the unconditional
  DDIMPipeline of one (modality, phase)) loads through ``DiffusionPipeline.from_pretrained`` and is
  called with ``batch_size``, ``num_inference_steps`` and one generator per image;
- weights load from safetensors only: a pickle checkpoint is refused, never unpickled. A missing or
  malformed folder is one GensynthError naming it, raised when the manager is made (before training);
- image i of a call comes from its own CPU generator seeded with ``sha256_seed(seed, folder, i)``: the
  same seed gives the same images, and image i does not depend on how many are asked for;
- an evicted pipeline is really freed: the cache held its only reference (a reference cycle is collected)
  and the CUDA cache is emptied (tests/test_genaug_manager.py checks it with weak references to its tensors).

Images come back as (n, C, H, W) float32 in [0, 1]: C = 3 for depth_rgb and thermal_rgb, 1 for the maps
(a map model that renders RGB images gives their channel mean).
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import weakref
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open

from ..device import autocast_dtype, pick_device
from ..errors import GensynthError
from ..io import load_json
from ..progress import progress_enabled
from ..seeding import sha256_seed, torch_generator
from .augmentation import (
    PHASES,
    AugmentationConfig,
    PromptTemplates,
    augmentation_configs,
    check_modality,
    check_phase,
    image_channels,
    is_count,
    model_folder,
)

if TYPE_CHECKING:
    import diffusers

log = logging.getLogger(__name__)

SD_PIPELINES = ("StableDiffusionPipeline",)  # text-to-image folders sampled with the phase's prompt
SD_UNUSED_COMPONENTS = ("safety_checker",)  # loaded as None (medical images: the group's code disables it)
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


@dataclass(frozen=True)
class CacheInfo:
    """The model cache's counters, in the manner of functools.lru_cache's cache_info()."""

    hits: int  # requests served by a pipeline already in memory
    misses: int  # requests that had to load one
    loads: int  # pipelines loaded (a failed load counts as a miss only)
    evictions: int  # pipelines dropped to make room (close() counts too)
    max_models: int
    loaded: tuple[str, ...]  # folders in memory, least recently used first

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses); 0.0 before the first request."""
        requests = self.hits + self.misses
        return self.hits / requests if requests else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "hit_rate": self.hit_rate}


@dataclass
class LoadedModel:
    pipeline: diffusers.DiffusionPipeline
    prompted: bool  # a Stable Diffusion pipeline, sampled with a prompt


def check_model_folder(folder: str | Path) -> dict[str, Any]:
    """model_index.json of a loadable diffusers pipeline folder, or one GensynthError naming what is wrong.

    Reads only configs and safetensors headers (cheap, even for the group's 48 GB of models).
    """
    import diffusers  # here, as in load_pipeline: a baseline arm's job never needs it

    folder = Path(folder)
    if not folder.is_dir():
        raise GensynthError(f"{folder}: model folder not found (expected a diffusers pipeline folder with model_index.json)")
    if not (folder / "model_index.json").is_file():
        checkpoints = sorted(path.name for path in folder.iterdir() if path.suffix in (*PICKLE_SUFFIXES, ".safetensors"))
        found = f"; it holds {', '.join(checkpoints)}, a single-file checkpoint: convert it to a diffusers folder" if checkpoints else ""
        raise GensynthError(f"{folder}: no model_index.json, so not a diffusers pipeline folder{found}")
    index = load_json(folder / "model_index.json")
    class_name = index.get("_class_name") if isinstance(index, dict) else None
    if not isinstance(class_name, str) or class_name not in dir(diffusers):
        raise GensynthError(f"{folder / 'model_index.json'}: _class_name {class_name!r} is no diffusers pipeline class")
    unused = SD_UNUSED_COMPONENTS if class_name in SD_PIPELINES else ()
    for name, spec in index.items():
        # Components are [library, class] pairs; [null, null] is an absent one, other keys are settings.
        if name.startswith("_") or name in unused or not (isinstance(spec, list) and len(spec) == 2 and spec[0]):
            continue
        check_component(folder / name)
    return index


def check_component(path: Path) -> None:
    """A component folder; one with a config.json is a model and needs readable safetensors weights."""
    if not path.is_dir():
        raise GensynthError(f"{path}: component folder missing (model_index.json lists {path.name!r})")
    if not (path / "config.json").is_file():
        return  # a scheduler, tokenizer or feature extractor: settings only
    weights = sorted(path.glob("*.safetensors"))
    if not weights:
        pickles = sorted(p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES)
        if pickles:
            raise GensynthError(
                f"{path}: only a pickle checkpoint ({', '.join(pickles)}), which is refused, never unpickled: "
                "save the model with save_pretrained(..., safe_serialization=True)"
            )
        raise GensynthError(f"{path}: model weights missing (expected a .safetensors file beside config.json)")
    for weights_file in weights:
        try:
            with safe_open(weights_file, framework="pt"):
                pass  # opening parses the header and checks that the file covers it
        except (SafetensorError, OSError) as exc:
            raise GensynthError(f"{weights_file}: not a readable safetensors file, truncated or of another format ({exc})") from None


def load_pipeline(folder: str | Path, device: torch.device) -> LoadedModel:
    """Load a checked pipeline folder onto ``device``: float16 on CUDA and MPS, float32 on the CPU."""
    folder = Path(folder)
    class_name = check_model_folder(folder)["_class_name"]
    dtype = autocast_dtype(device) or torch.float32
    prompted = class_name in SD_PIPELINES
    # Imported here: a baseline arm's job, which never loads a pipeline, does without diffusers (seconds).
    import diffusers

    try:
        if prompted:
            # Imported here: it imports transformers, which only SD folders need.
            from diffusers import StableDiffusionPipeline

            pipeline = StableDiffusionPipeline.from_pretrained(
                folder, dtype=dtype, safety_checker=None, requires_safety_checker=False, use_safetensors=True, local_files_only=True
            )
        else:
            pipeline = diffusers.DiffusionPipeline.from_pretrained(folder, dtype=dtype, use_safetensors=True, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 (diffusers and transformers raise many kinds for a bad folder: each becomes one error naming it)
        raise GensynthError(f"{folder}: not a loadable {class_name} folder ({type(exc).__name__}: {exc})") from None
    pipeline.to(device)
    pipeline.set_progress_bar_config(disable=not progress_enabled())
    return LoadedModel(pipeline, prompted)


def pipeline_bytes(pipeline: diffusers.DiffusionPipeline) -> int:
    """Bytes of the pipeline's parameters and buffers (all its torch modules)."""
    modules = [c for c in pipeline.components.values() if isinstance(c, torch.nn.Module)]
    return sum(t.numel() * t.element_size() for m in modules for t in (*m.parameters(), *m.buffers()))


def resize(images: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (antialiased) resize of (N, C, H, W) images in [0, 1]."""
    resized = F.interpolate(torch.from_numpy(images), size=size, mode="bilinear", antialias=True, align_corners=False)  # (N, C, *size)
    return resized.clamp(0, 1).numpy()


class GenerativeAugmentationManager:
    """Synthetic images of (modality, phase) from the pipelines in ``base_dir``, held in an LRU cache.

    ``config`` maps modality -> AugmentationConfig (see augmentation_configs); only enabled modalities
    can generate. The cache holds at most the smallest ``max_models`` of the enabled modalities (the
    strictest memory limit wins). ``prompts``: PromptTemplates, a YAML path or a mapping (default: the
    shipped resources/genaug/prompts.yaml). ``device``: None or "auto" picks CUDA, then MPS, then the CPU.
    """

    def __init__(
        self,
        base_dir: str | Path,
        config: Mapping[str, AugmentationConfig],
        device: str | torch.device | None = None,
        prompts: PromptTemplates | str | Path | Mapping[str, Any] | None = None,
    ):
        self.base_dir = Path(base_dir)
        for modality, modality_config in config.items():
            check_modality(modality, "GenerativeAugmentationManager config")
            modality_config.check(modality)
        self.config = dict(config)
        self.enabled = tuple(modality for modality, c in self.config.items() if c.enabled)
        self.max_models = min((self.config[m].max_models for m in self.enabled), default=AugmentationConfig.max_models)
        self.device = device if isinstance(device, torch.device) else pick_device(device or "auto")
        self.prompts = prompts if isinstance(prompts, PromptTemplates) else PromptTemplates.load(prompts)
        self._cache: OrderedDict[str, LoadedModel] = OrderedDict()  # least recently used first
        self._hits = self._misses = self._loads = self._evictions = 0
        if not self.base_dir.is_dir():
            raise GensynthError(f"{self.base_dir}: generative augmentation model folder not found")
        for folder in sorted({model_folder(m, p) for m in self.enabled for p in PHASES}):
            check_model_folder(self.base_dir / folder)  # a bad folder fails now, not hours into training

    @classmethod
    def from_section(
        cls,
        base_dir: str | Path,
        section: Mapping[str, Any] | None,
        device: str | torch.device | None = None,
        where: str = "genaug",
        use_generative_augmentation: bool | None = None,
    ) -> GenerativeAugmentationManager:
        """A manager from the config section: its modalities' configs and its prompts."""
        configs = augmentation_configs(section, where, use_generative_augmentation)
        return cls(base_dir, configs, device, PromptTemplates.load((section or {}).get("prompts"), f"{where}.prompts"))

    def get_pipeline(self, modality: str, phase: str) -> LoadedModel:
        """The (modality, phase) pipeline from the cache, loaded (after evicting the LRU one if full) on a miss."""
        self.modality_config(modality)
        folder = model_folder(modality, phase)
        if folder in self._cache:
            self._hits += 1
            self._cache.move_to_end(folder)
            return self._cache[folder]
        self._misses += 1
        while len(self._cache) >= self.max_models:  # evict first: at most max_models in memory, even while loading
            self.evict(next(iter(self._cache)))
        log.debug("loading %s (%d of %d in memory)", self.base_dir / folder, len(self._cache) + 1, self.max_models)
        self._cache[folder] = load_pipeline(self.base_dir / folder, self.device)
        self._loads += 1
        return self._cache[folder]

    def generate(self, modality: str, phase: str, n: int, seed: int, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """``n`` synthetic images of ``modality`` in healing ``phase``: (n, C, H, W) float32 in [0, 1].

        ``n`` is 1 .. the modality's batch_limit. ``size`` (side or (H, W)) resizes them; None keeps the
        model's size. The same ``seed`` gives the same images, image i whatever ``n``.
        """
        config = self.modality_config(modality)
        check_phase(phase)
        if not (is_count(n) and n <= config.batch_limit):
            limit = config.batch_limit
            raise GensynthError(f"generate({modality}, {phase}): n = {n!r}, expected 1 to {limit} (the batch_limit of {modality})")
        n = int(n)
        model = self.get_pipeline(modality, phase)
        folder = model_folder(modality, phase)
        generators = [torch_generator(sha256_seed(seed, folder, i)) for i in range(n)]  # CPU: same draws on every device
        if model.prompted:
            prompt = self.prompts.prompt(modality, phase)
            output = model.pipeline(
                prompt=[prompt] * n,
                num_inference_steps=config.inference_steps,
                guidance_scale=config.guidance_scale,
                generator=generators,
                output_type="np",
            )
        else:
            output = model.pipeline(batch_size=n, num_inference_steps=config.inference_steps, generator=generators, output_type="np")
        images = np.ascontiguousarray(np.asarray(output.images, dtype=np.float32).transpose(0, 3, 1, 2))  # (n, C', H, W)
        images = self.classifier_channels(images, modality, folder)  # (n, C, H, W)
        if size is not None:
            images = resize(images, (size, size) if isinstance(size, int) else tuple(size))
        return images

    def modality_config(self, modality: str) -> AugmentationConfig:
        """The config of an enabled modality; a disabled or unknown one is an error."""
        check_modality(modality)
        if modality not in self.enabled:
            enabled = ", ".join(self.enabled) or "none (is use_generative_augmentation off?)"
            raise GensynthError(f"modality {modality!r}: generative augmentation is not enabled for it (enabled: {enabled})")
        return self.config[modality]

    @staticmethod
    def classifier_channels(images: np.ndarray, modality: str, folder: str) -> np.ndarray:
        """(N, C', H, W) -> (N, C, H, W) with the modality's channels (3 rgb, 1 map)."""
        channels = image_channels(modality)
        if images.shape[1] == channels:
            return images
        if channels == 1 and images.shape[1] == 3:
            return images.mean(axis=1, keepdims=True)  # a map rendered as RGB: its grey level
        raise GensynthError(f"{folder}: makes {images.shape[1]}-channel images, {modality} needs {channels}")

    def evict(self, folder: str) -> None:
        """Drop a folder's pipeline and free its memory (CPU and GPU)."""
        modules = [weakref.ref(c) for c in self._cache.pop(folder).pipeline.components.values() if isinstance(c, torch.nn.Module)]
        if any(module() is not None for module in modules):
            # The cache held the only reference, so only a reference cycle (a hook, say) keeps them:
            # collect it. Not every time: a full collection takes ~0.3 s with torch and diffusers loaded.
            gc.collect()
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # hand the freed blocks back to the driver
        elif self.device.type == "mps":
            torch.mps.empty_cache()
        self._evictions += 1
        log.debug("evicted %s", self.base_dir / folder)

    def loaded_bytes(self) -> int:
        """Parameter and buffer bytes of the pipelines in memory."""
        return sum(pipeline_bytes(model.pipeline) for model in self._cache.values())

    def cache_info(self) -> CacheInfo:
        return CacheInfo(self._hits, self._misses, self._loads, self._evictions, self.max_models, tuple(self._cache))

    @property
    def stats(self) -> CacheInfo:
        """Same as cache_info()."""
        return self.cache_info()

    def close(self) -> None:
        """Evict every pipeline."""
        while self._cache:
            self.evict(next(iter(self._cache)))

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
