"""Which device a job runs on, and the autocast dtype that suits it."""

from __future__ import annotations

import argparse
import contextlib
import logging
import os

import torch

from .cli import DEVICE_CHOICES
from .errors import GensynthError

log = logging.getLogger(__name__)


def mps_available() -> bool:
    return bool(getattr(torch.backends, "mps", None)) and torch.backends.mps.is_available()


def pick_device(requested: str = "auto") -> torch.device:
    """``auto``: CUDA, then MPS, then CPU. An explicit device that is missing is an error.

    The choice is logged with CUDA_VISIBLE_DEVICES, so a job's log shows which GPU it was given.
    """
    device = _resolve(requested)
    log.info("device %s (asked: %s, CUDA_VISIBLE_DEVICES=%s)", device, requested, os.environ.get("CUDA_VISIBLE_DEVICES", "unset"))
    return device


def limit_threads(threads: int) -> None:
    """At most ``threads`` threads for torch and for the BLAS and OpenMP pools NumPy and scikit-learn use
    (threadpoolctl): a job holds the cores its rule asked for, and oversubscribed pools spin."""
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(threads)
    threadpool_limits(threads)


def use_device(args: argparse.Namespace) -> torch.device:
    """Apply ``--threads`` and return the device ``--device`` names (see :func:`pick_device`)."""
    limit_threads(args.threads)
    return pick_device(args.device)


def _resolve(requested: str) -> torch.device:
    if requested not in DEVICE_CHOICES and not requested.startswith("cuda:"):
        raise GensynthError(f"device {requested!r}: expected one of {', '.join(DEVICE_CHOICES)} or cuda:N")
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps") if mps_available() else torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise GensynthError(f"device {requested!r} asked for, but torch sees no CUDA GPU")
    if requested == "mps" and not mps_available():
        raise GensynthError("device 'mps' asked for, but torch sees no MPS backend")
    return torch.device(requested)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """Half precision on GPUs; None (plain float32) on the CPU, where fp16 is slow."""
    return torch.float16 if device.type in ("cuda", "mps") else None


def autocast(device: torch.device):
    """torch.autocast with the device's dtype, or a no-op on the CPU."""
    dtype = autocast_dtype(device)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
