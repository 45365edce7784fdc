"""Where an artifact came from: inputs' SHA-256, config, code version, machine, times."""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from .io import sha256_file

TRACKED_PACKAGES = ("gensynth", "numpy", "torch", "diffusers", "scipy", "scikit-learn", "pandas", "matplotlib", "snakemake")
GIT_COMMIT_ENV = "GENSYNTH_GIT_COMMIT"


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def git_commit() -> str:
    """The checkout's HEAD (with ``-dirty`` when modified), $GENSYNTH_GIT_COMMIT, or "unknown"."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10, check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{commit}-dirty" if dirty else commit


def package_versions(names: Iterable[str] = TRACKED_PACKAGES) -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


class Provenance:
    """Collects provenance over a job: create at its start, call :meth:`record` at its end."""

    def __init__(self, config: Mapping[str, Any] | None = None, device: str = "cpu"):
        self.config = dict(config or {})
        self.device = str(device)
        self.started = utc_now()

    def record(self, inputs: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike] = ()) -> dict[str, Any]:
        if not isinstance(inputs, Mapping):
            inputs = {str(p): p for p in inputs}
        return {
            "inputs": {name: {"path": str(p), "sha256": sha256_file(p)} for name, p in inputs.items()},
            "config": self.config,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "argv": list(sys.argv),
            "host": socket.gethostname(),
            "device": self.device,
            "started_utc": self.started,
            "finished_utc": utc_now(),
        }
