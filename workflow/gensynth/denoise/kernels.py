"""The fused CPU kernels' first call, once per machine: processes that start together (the DAG's two training
arms, its shard jobs) would each spend numba's cold compile (31.7 CPU-s measured on the 2-core machine).

Every process runs the kernels loaded from numba's cache, never the ones it compiled itself: the same kernels
compiled in-process round differently (measured: a denoiser trained after its own compile had another loss
in the 8th digit and another checkpoint than one trained on cached kernels), so the numbers depended on which
job happened to compile first. A child process fills the cache."""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import subprocess
import sys
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
        if not kernels_cached():
            compile_into_cache()
        scan.warm_up()
    log.info("fused kernels ready in %.1f s (%.1f s waiting for another process's compile)", time.perf_counter() - started, waited)


def kernels_cached() -> bool:
    """Whether numba's cache holds every kernel (or there is no cache to hold them: then they compile anyway)."""
    for kernel in scan.KERNELS:
        cache_file = getattr(kernel._cache, "_cache_file", None)
        if cache_file is not None and not Path(cache_file._index_path).is_file():
            return False
    return True


def compile_into_cache() -> None:
    """Compile the kernels in a child process, which writes them to numba's cache."""
    package_root = str(Path(scan.__file__).resolve().parents[2])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", "from gensynth.denoise.scan import warm_up; warm_up()"], env=env, check=True)
