"""The shape rules of the UNets the modules build, without torch: each module's ``validate`` checks its config
with them when the Snakefile is parsed, and ``models`` checks a model's settings before building it."""

from __future__ import annotations

from collections.abc import Sequence

from ..dagtools import config_error

NORM_GROUPS = 8  # GroupNorm groups of every UNet the modules build: channels come in multiples of it


def channels_problem(channels: Sequence[int], norm_groups: int = NORM_GROUPS) -> str | None:
    """What the channels per level must be (every architecture's GroupNorm divides them), or None."""
    if any(c % norm_groups for c in channels):
        return f"multiples of {norm_groups} (the UNet's group norm)"
    return None


def unet_shape_problem(channels: Sequence[int], size: int, norm_groups: int = NORM_GROUPS) -> tuple[str, str] | None:
    """What a UNet with ``channels`` per level cannot do on images of side ``size``: ("channels" or "size", what
    was expected), or None. Every level but the last halves the image."""
    expected = channels_problem(channels, norm_groups)
    if expected:
        return "channels", expected
    levels = len(channels)
    if size % 2 ** (levels - 1):
        return "size", f"a multiple of {2 ** (levels - 1)} (the UNet halves it {levels - 1} times: block_out_channels {list(channels)})"
    return None


def check_unet_shape(channels: Sequence[int], size: int, *, channels_key: str, size_key: str) -> None:
    """:func:`unet_shape_problem` as one config error that names the key at fault."""
    problem = unet_shape_problem(channels, size)
    if problem:
        part, expected = problem
        raise config_error(channels_key if part == "channels" else size_key, list(channels) if part == "channels" else size, expected)
