"""The MambaUV checkpoint file: read, check its format, rebuild the model (no training imports: inference loads fast)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ..errors import GensynthError
from ..io import load_checkpoint
from .mamba import MambaUV, MambaUVConfig

CHECKPOINT_FORMAT = "gensynth.denoise.mamba_uv/1"


def read_denoiser_checkpoint(path: str | Path) -> dict[str, Any]:
    """A MambaUV checkpoint's dict (``weights_only``), its format checked."""
    path = Path(path)
    state = load_checkpoint(path)
    if state.get("format") != CHECKPOINT_FORMAT:
        raise GensynthError(f"{path}: not a MambaUV denoiser checkpoint (format {state.get('format')!r}; expected {CHECKPOINT_FORMAT!r})")
    return state


def build_denoiser(state: dict[str, Any], device: torch.device | str = "cpu") -> MambaUV:
    """The model of a checkpoint's dict, with its (EMA) weights, in eval mode."""
    model = MambaUV(MambaUVConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["state_dict"])
    return model.to(device).eval()
