"""Generative augmentation settings: modalities, their models, the global switch, the prompts.

The group's code (``generative_augmentation_v2.py`` and ``production_config.py``):

- the classifier's modalities are depth_rgb, thermal_rgb, depth_map and thermal_map;
- one fine-tuned model per (image kind, healing phase) in ``models_5_7/{kind}_{phase}``, nine in all:
  depth_rgb and thermal_rgb both draw from the ``rgb_{phase}`` models, each map from its own;
- ``USE_GENERATIVE_AUGMENTATION = False``: off unless switched on (the augmented arm switches it on),
  and then only depth_rgb is augmented by default; the two maps keep regular augmentation only;
- per modality an ``AugmentationConfig`` whose defaults are the production values below.

The config section this module reads (``genaug`` in ``config/config.yaml``; every key optional)::

    use_generative_augmentation: false   # the global switch
    prompts: resources/genaug/prompts.yaml   # or the same layout inline as a mapping
    modalities:
      depth_rgb: {enabled: true, prob: 0.5, mix_ratio_range: [0.01, 0.05], inference_steps: 10,
                  batch_limit: 30, max_models: 3, guidance_scale: 7.5}
      thermal_rgb: {enabled: false}

Nothing here imports torch or diffusers: the Snakefile validates the section at parse time.
"""

from __future__ import annotations

import dataclasses
import json
import numbers
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from ..errors import GensynthError

MODALITIES = ("depth_rgb", "thermal_rgb", "depth_map", "thermal_map")
PHASES = ("I", "P", "R")
PHASE_NAMES = {"I": "inflammatory", "P": "proliferative", "R": "remodeling"}
MODEL_KINDS = ("rgb", "thermal_map", "depth_map")  # the image kinds of the model folders, in the group's order
MODEL_KIND = {"depth_rgb": "rgb", "thermal_rgb": "rgb", "depth_map": "depth_map", "thermal_map": "thermal_map"}
MODEL_FOLDERS = tuple(f"{kind}_{phase}" for kind in MODEL_KINDS for phase in PHASES)  # rgb_I ... depth_map_R
CHANNELS = {"rgb": 3, "thermal_map": 1, "depth_map": 1}  # channels of the images handed to the classifier

USE_GENERATIVE_AUGMENTATION = False  # the group's global switch, off by default
DEFAULT_ENABLED = {"depth_rgb": True, "thermal_rgb": False, "depth_map": False, "thermal_map": False}
DEFAULT_PROMPTS = Path(__file__).resolve().parents[3] / "resources" / "genaug" / "prompts.yaml"
PROMPT_PLACEHOLDERS = ("view", "phase", "phase_name")


def show(value: Any) -> str:
    return json.dumps(value, default=str)


def config_error(key: str, value: Any, expected: str) -> GensynthError:
    """One line in the style of gensynth.config: which key, which value, what was expected."""
    return GensynthError(f"config key '{key}' = {show(value)}: expected {expected}")


def check_modality(modality: Any, where: str = "modality") -> str:
    if modality not in MODALITIES:
        raise GensynthError(f"{where}: unknown modality {show(modality)} (expected one of: {', '.join(MODALITIES)})")
    return modality


def check_phase(phase: Any, where: str = "phase") -> str:
    if phase not in PHASES:
        raise GensynthError(f"{where}: unknown phase {show(phase)} (expected one of: {', '.join(PHASES)})")
    return phase


def model_kind(modality: str) -> str:
    """The image kind whose models a modality draws from: ``rgb``, ``depth_map`` or ``thermal_map``."""
    return MODEL_KIND[check_modality(modality)]


def model_folder(modality: str, phase: str) -> str:
    """The model folder of a (modality, phase): depth_rgb, I -> ``rgb_I``; depth_map, R -> ``depth_map_R``."""
    return f"{model_kind(modality)}_{check_phase(phase)}"


def image_channels(modality: str) -> int:
    """3 for the rgb modalities, 1 for the maps."""
    return CHANNELS[model_kind(modality)]


def is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def is_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


@dataclass(frozen=True)
class AugmentationConfig:
    """How one modality is augmented. Defaults: the group's production values (production_config.py)."""

    enabled: bool = False  # per modality; augmentation_configs also applies the global switch
    prob: float = 0.5  # GENERATIVE_AUG_PROB: chance that a training batch gets synthetic samples
    mix_ratio_range: tuple[float, float] = (0.01, 0.05)  # GENERATIVE_AUG_MIX_RATIO: synthetic share of a batch (low, high)
    inference_steps: int = 10  # GENERATIVE_AUG_INFERENCE_STEPS: diffusion steps (10 fast, 50 quality)
    batch_limit: int = 30  # GENERATIVE_AUG_BATCH_LIMIT: most images one generate() call makes
    max_models: int = 3  # GENERATIVE_AUG_MAX_MODELS: pipelines held in memory at once
    guidance_scale: float = 7.5  # classifier-free guidance of Stable Diffusion folders (diffusers' default)

    def check(self, where: str) -> None:
        """Raise GensynthError naming ``<where>.<key>`` (e.g. ``genaug.modalities.depth_rgb.prob``)."""
        if not isinstance(self.enabled, bool):
            raise config_error(f"{where}.enabled", self.enabled, "true or false")
        if not (is_number(self.prob) and 0 <= self.prob <= 1):
            raise config_error(f"{where}.prob", self.prob, "a probability in [0, 1]")
        ratio = self.mix_ratio_range
        if not (isinstance(ratio, (list, tuple)) and len(ratio) == 2 and all(is_number(r) and 0 <= r <= 1 for r in ratio)):
            raise config_error(f"{where}.mix_ratio_range", ratio, "a pair [low, high] of fractions in [0, 1]")
        if ratio[0] > ratio[1]:
            raise config_error(f"{where}.mix_ratio_range", ratio, "low <= high (the range is reversed)")
        for key in ("inference_steps", "batch_limit", "max_models"):
            if not is_count(getattr(self, key)):
                raise config_error(f"{where}.{key}", getattr(self, key), "an integer >= 1")
        if not (is_number(self.guidance_scale) and self.guidance_scale >= 0):
            raise config_error(f"{where}.guidance_scale", self.guidance_scale, "a number >= 0")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None, where: str, enabled: bool = False) -> AugmentationConfig:
        """A checked config from a config mapping; missing keys take the defaults (``enabled`` given here)."""
        values = {} if values is None else values
        if not isinstance(values, Mapping):
            raise config_error(where, values, "a mapping of augmentation settings")
        known = [field.name for field in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known), key=str)
        if unknown:
            raise GensynthError(f"config key '{where}': unknown key {show(unknown[0])} (expected one of: {', '.join(known)})")
        settings = {"enabled": enabled, **values}
        if isinstance(settings.get("mix_ratio_range"), list):
            settings["mix_ratio_range"] = tuple(settings["mix_ratio_range"])
        config = cls(**settings)
        config.check(where)
        return config


def augmentation_configs(
    section: Mapping[str, Any] | None, where: str = "genaug", use_generative_augmentation: bool | None = None
) -> dict[str, AugmentationConfig]:
    """The four modalities' checked configs from the config section (see the module docstring).

    ``enabled`` in the result is what applies: the modality's own flag and the global switch
    (``use_generative_augmentation`` overrides the section's, e.g. for the augmented arm).
    """
    section = {} if section is None else section
    if not isinstance(section, Mapping):
        raise config_error(where, section, "a mapping")
    switch = section.get("use_generative_augmentation", USE_GENERATIVE_AUGMENTATION)
    if not isinstance(switch, bool):
        raise config_error(f"{where}.use_generative_augmentation", switch, "true or false")
    if use_generative_augmentation is not None:
        switch = use_generative_augmentation
    modalities = section.get("modalities") or {}
    if not isinstance(modalities, Mapping):
        raise config_error(f"{where}.modalities", modalities, "a mapping from modality to its settings")
    for name in modalities:
        check_modality(name, f"config key '{where}.modalities'")
    configs = {}
    for modality in MODALITIES:
        config = AugmentationConfig.from_dict(modalities.get(modality), f"{where}.modalities.{modality}", DEFAULT_ENABLED[modality])
        configs[modality] = dataclasses.replace(config, enabled=config.enabled and switch)
    return configs


@dataclass(frozen=True)
class PromptTemplates:
    """Per healing phase a prompt template with medical context (layout: resources/genaug/prompts.yaml)."""

    views: Mapping[str, str]  # model kind -> how its images are named in a prompt ("depth map")
    phases: Mapping[str, str]  # phase -> template with {view}, {phase}, {phase_name}

    def prompt(self, modality: str, phase: str) -> str:
        """The prompt of a (modality, phase): its phase's template with the modality's model view."""
        template = self.phases[check_phase(phase)]
        return template.format(view=self.views[model_kind(modality)], phase=phase, phase_name=PHASE_NAMES[phase])

    @classmethod
    def load(cls, source: str | Path | Mapping[str, Any] | None = None, where: str = "genaug.prompts") -> PromptTemplates:
        """From a YAML file (None: the shipped default) or an inline mapping of the same layout, checked.

        Errors name the file and key, or the config key ``<where>.<key>`` for an inline mapping.
        """
        if isinstance(source, Mapping):
            contents, label = source, key_namer(where, None)
        elif source is None or isinstance(source, (str, Path)):
            path = Path(DEFAULT_PROMPTS if source is None else source)
            if not path.is_file():
                raise GensynthError(f"{path}: prompt templates file not found (config key '{where}')")
            try:
                contents = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (yaml.YAMLError, UnicodeDecodeError) as exc:
                raise GensynthError(f"{path}: not valid YAML ({' '.join(str(exc).split())})") from None
            label = key_namer(where, path)
        else:
            raise config_error(where, source, "a path to a prompts YAML file, or a mapping of that layout")
        if not isinstance(contents, Mapping) or set(contents) != {"views", "phases"}:
            keys = sorted(contents, key=str) if isinstance(contents, Mapping) else show(contents)
            raise GensynthError(f"{label()}: expected exactly the keys phases and views, found {keys}")
        views = check_texts(contents["views"], MODEL_KINDS, "model kind", "views", label)
        phases = check_texts(contents["phases"], PHASES, "phase", "phases", label)
        for phase, template in phases.items():
            check_template(template, label(f"phases.{phase}"))
        return cls(views=views, phases=phases)


def key_namer(where: str, path: Path | None) -> Callable[..., str]:
    """How errors name a key: the config key of an inline mapping, or the file and its key."""

    def name(key: str = "") -> str:
        if path is None:
            return f"config key '{where}.{key}'" if key else f"config key '{where}'"
        return f"{path}: key '{key}'" if key else str(path)

    return name


def check_texts(texts: Any, names: tuple[str, ...], what: str, key: str, label: Callable[..., str]) -> dict[str, str]:
    """``texts`` must map exactly ``names`` to non-empty strings."""
    if not isinstance(texts, Mapping):
        raise GensynthError(f"{label(key)}: expected a mapping from {what} to text, found {show(texts)}")
    for name in texts:
        if name not in names:
            raise GensynthError(f"{label(key)}: unknown {what} {show(name)} (expected one of: {', '.join(names)})")
    for name in names:
        if not (isinstance(texts.get(name), str) and texts[name].strip()):
            raise GensynthError(f"{label(f'{key}.{name}')}: expected a non-empty text, found {show(texts.get(name))}")
    return {name: texts[name] for name in names}


def check_template(template: str, label: str) -> None:
    """Only the known placeholders, and braces that format."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as exc:
        raise GensynthError(f"{label}: not a format template ({exc}; write a literal brace as {{{{ or }}}})") from None
    for field in fields:
        if field not in PROMPT_PLACEHOLDERS:
            known = ", ".join(f"{{{name}}}" for name in PROMPT_PLACEHOLDERS)
            raise GensynthError(f"{label}: unknown placeholder {{{field}}} (expected: {known})")


def validate_augmentation(section: Mapping[str, Any] | None, where: str = "genaug") -> None:
    """Parse-time check of the section's augmentation keys (the DAG calls it); GensynthError on the first problem."""
    augmentation_configs(section, where)
    PromptTemplates.load((section or {}).get("prompts"), f"{where}.prompts")
