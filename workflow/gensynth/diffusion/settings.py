"""Names the diffusion core's settings take, torch-free: scripts declare their flags from them before importing torch."""

from __future__ import annotations

from typing import Literal, get_args

SamplerKind = Literal["ddim", "ddpm"]
SAMPLERS: tuple[str, ...] = get_args(SamplerKind)
