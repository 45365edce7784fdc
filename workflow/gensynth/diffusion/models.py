"""What the diffusion core needs of a model, and the models it can build by name.

The interface (any ``torch.nn.Module``; diffusers' ``UNet2DModel`` satisfies it as it is):

- ``model(x_t, t, class_labels=y).sample`` is eps (or v) with the shape of ``x_t``: (B, C, H, W) for
  images, (B, C, L) for sequences, any (B, *sample_shape);
- ``model.sample_shape``: the shape of one sample, e.g. (C, H, W) or (C, L); without it,
  ``(config.in_channels, config.sample_size, config.sample_size)`` (diffusers' 2-D models);
- ``model.null_label``: the class token of the unconditional model (classifier-free guidance), or
  None for a model without classes (then ``class_labels`` is None); without it,
  ``config.num_class_embeds - 1`` (or None when that is None).

Architectures are built by name from a settings object with ``to_dict``/``from_dict`` (stored in
checkpoints as plain values). ``unet2d`` is diffusers' ``UNet2DModel``; a module registers its own
(madness's ``context_unet``) with :func:`register_architecture` when it is imported.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ..errors import GensynthError
from .shape import NORM_GROUPS, unet_shape_problem

if TYPE_CHECKING:
    from diffusers import UNet2DModel


def sample_shape(model: torch.nn.Module) -> tuple[int, ...]:
    shape = getattr(model, "sample_shape", None)
    if shape is not None:
        return tuple(shape)
    cfg = model.config
    return (cfg.in_channels, cfg.sample_size, cfg.sample_size)


def null_label(model: torch.nn.Module) -> int | None:
    if hasattr(model, "null_label"):
        return model.null_label
    num_class_embeds = getattr(model.config, "num_class_embeds", None)
    return None if num_class_embeds is None else num_class_embeds - 1


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@dataclass
class UNetConfig:
    """Settings of a class-conditional image UNet; stored in every checkpoint as a plain dict."""

    sample_size: int  # H = W
    in_channels: int  # C
    out_channels: int  # C (eps has the data's shape)
    num_classes: int  # K real condition tokens; token K is the null token
    block_out_channels: tuple[int, ...] = (32, 64, 64)  # one resolution level each
    layers_per_block: int = 1
    attention: bool = True  # self-attention on every level but the first (the mid block always has one)
    norm_num_groups: int = NORM_GROUPS
    # None: one head as wide as its level (Ho et al.'s DDPM). diffusers' default of 8 makes
    # channels/8 heads, each with its own tokens x tokens score matrix: 6-7x slower at 128x128.
    attention_head_dim: int | None = None
    architecture: str = "unet2d"  # a registered architecture (see ARCHITECTURES)
    num_train_timesteps: int | None = None  # T, for architectures whose time input is t / T

    def __post_init__(self):
        self.block_out_channels = tuple(int(c) for c in self.block_out_channels)
        architecture(self.architecture).check(self)

    @property
    def null_token(self) -> int:
        return self.num_classes

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> UNetConfig:
        """The inverse of :meth:`to_dict`. Settings written before ``attention_head_dim``
        existed ran diffusers' default of 8."""
        return cls(**{"attention_head_dim": 8, **values})

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "block_out_channels": list(self.block_out_channels)}


@dataclass(frozen=True)
class Architecture:
    build: Callable[[Any], torch.nn.Module]
    check: Callable[[Any], None]  # raises GensynthError naming the setting
    config_class: type = UNetConfig


ARCHITECTURES: dict[str, Architecture] = {}


def register_architecture(name: str, build: Callable, check: Callable, config_class: type = UNetConfig) -> None:
    ARCHITECTURES[name] = Architecture(build, check, config_class)


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise GensynthError(
            f"model architecture {name!r}: expected one of {', '.join(ARCHITECTURES)} (a module's own architecture registers when the module is imported)"
        )
    return ARCHITECTURES[name]


def build_model(cfg) -> torch.nn.Module:
    return architecture(cfg.architecture).build(cfg)


def model_config_from_dict(values: dict[str, Any]):
    """A checkpoint's stored settings back as their architecture's settings object."""
    return architecture(values.get("architecture", "unet2d")).config_class.from_dict(values)


def check_unet2d(cfg: UNetConfig) -> None:
    problem = unet_shape_problem(cfg.block_out_channels, cfg.sample_size, cfg.norm_num_groups)
    if problem:
        part, expected = problem
        value = f"block_out_channels {list(cfg.block_out_channels)}" if part == "channels" else f"sample_size {cfg.sample_size}"
        raise GensynthError(f"UNet {value}: expected {expected}")


def build_unet2d(cfg: UNetConfig) -> UNet2DModel:
    # diffusers' model zoo takes seconds to import: only jobs that build a model pay for it.
    from diffusers import UNet2DModel

    levels = len(cfg.block_out_channels)
    attn = [cfg.attention and level > 0 for level in range(levels)]
    return UNet2DModel(
        sample_size=cfg.sample_size,
        in_channels=cfg.in_channels,
        out_channels=cfg.out_channels,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=cfg.layers_per_block,
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        norm_num_groups=cfg.norm_num_groups,
        num_class_embeds=cfg.num_classes + 1,
        attention_head_dim=cfg.attention_head_dim,
    )


register_architecture("unet2d", build_unet2d, check_unet2d)
