"""The augmentation settings as script flags: ``modalities.<m>.<key>`` is ``--<m>-<key>`` (``--depth-rgb-prob``).

Shared by the DAG (which spells the flags) and the scripts (which parse them), so that both use one
spelling; defaults come from the schema, so a script run by hand augments as the DAG does. No torch.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from ..config import schema_default
from ..errors import GensynthError
from .augmentation import MODALITIES, AugmentationConfig, PromptTemplates, augmentation_configs

KEYS = tuple(field.name for field in dataclasses.fields(AugmentationConfig))  # enabled, prob, mix_ratio_range, ...


def default(key: str) -> Any:
    """The schema's default of ``genaug.<key>``: every genaug script's flag defaults to it."""
    return schema_default("genaug", key)


def flag_name(modality: str, key: str) -> str:
    return f"--{modality.replace('_', '-')}-{key.replace('_', '-')}"


def dest(modality: str, key: str) -> str:
    return f"{modality}_{key}"


def add_augmentation_arguments(parser: argparse.ArgumentParser) -> None:
    """``--use-generative-augmentation``, ``--prompts`` and the per-modality flags, defaults from the schema."""
    parser.add_argument(
        "--use-generative-augmentation",
        action=argparse.BooleanOptionalAction,
        default=default("use_generative_augmentation"),
        help="the global switch: off trains the baseline (no synthetic images)",
    )
    parser.add_argument(
        "--prompts", default=default("prompts"), help="prompt templates of Stable Diffusion folders: a YAML file, or the same layout as JSON text"
    )
    group = parser.add_argument_group("per-modality augmentation (the group's AugmentationConfig)")
    for modality in MODALITIES:
        for key in KEYS:
            value = default(f"modalities.{modality}.{key}")
            name, target = flag_name(modality, key), dest(modality, key)
            if isinstance(value, bool):
                group.add_argument(name, dest=target, action=argparse.BooleanOptionalAction, default=value)
            elif isinstance(value, list):
                group.add_argument(name, dest=target, type=float, nargs=2, default=value, metavar=("LOW", "HIGH"))
            else:
                group.add_argument(name, dest=target, type=type(value), default=value)


def section_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The flags back as a config section (``use_generative_augmentation``, ``modalities``)."""
    modalities = {m: {key: getattr(args, dest(m, key)) for key in KEYS} for m in MODALITIES}
    return {"use_generative_augmentation": args.use_generative_augmentation, "modalities": modalities}


def configs_from_args(args: argparse.Namespace, where: str = "flags") -> dict[str, AugmentationConfig]:
    """Checked per-modality configs (``enabled`` ANDed with the global switch)."""
    return augmentation_configs(section_from_args(args), where)


def prompts_from_arg(value: str) -> PromptTemplates:
    """``--prompts``: a YAML path, or JSON text of the same layout (the DAG passes an inline mapping so)."""
    if value.lstrip().startswith("{"):
        try:
            mapping = json.loads(value)
        except json.JSONDecodeError as exc:
            raise GensynthError(f"--prompts: not valid JSON ({exc})") from None
        return PromptTemplates.load(mapping, "--prompts")
    return PromptTemplates.load(value, "--prompts")


def prompts_value(prompts: str | Mapping[str, Any]) -> str:
    """How the DAG passes the config's prompts: the path, or the inline mapping as JSON."""
    return prompts if isinstance(prompts, str) else json.dumps(prompts, sort_keys=True)
