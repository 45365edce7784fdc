"""The fused CPU kernels' first call, once per machine: processes that start together (the DAG's two training
arms, its shard jobs) would each spend numba's cold compile (31.7 CPU-s measured on the 2-core machine)."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import tempfile
import time
from pathlib import Path

import torch

from . import scan

log = logging.getLogger(__name__)


def warm_up_kernels(device: torch.device) -> None:
    """On the CPU, :func:`scan.warm_up` under an exclusive lock: the first process compiles and fills numba's
    cache, the others wait and then load the kernels from it (a fraction of a second)."""
    if torch.device(device).type != "cpu":
        return
    key = hashlib.sha256(str(Path(scan.__file__).resolve()).encode()).hexdigest()[:16]
    lock = Path(tempfile.gettempdir()) / f"gensynth-denoise-kernels-{key}.lock"
    started = time.perf_counter()
    with open(lock, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        waited = time.perf_counter() - started
        scan.warm_up()
    log.info("fused kernels ready in %.1f s (%.1f s waiting for another process's compile)", time.perf_counter() - started, waited)
