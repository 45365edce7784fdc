"""Where an artifact came from: inputs' and outputs' SHA-256, arguments and config section, rule and wildcards,
code version, machine and device, times."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from .io import sha256_file

TRACKED_PACKAGES = (
    "gensynth",
    "numpy",
    "torch",
    "diffusers",
    "transformers",
    "numba",
    "scipy",
    "scikit-learn",
    "pandas",
    "matplotlib",
    "snakemake",
)
GIT_COMMIT_ENV = "GENSYNTH_GIT_COMMIT"


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


def git_commit() -> str:
    """The checkout's HEAD (with ``-dirty`` when modified), $GENSYNTH_GIT_COMMIT, or "unknown"."""
    if os.environ.get(GIT_COMMIT_ENV):
        return os.environ[GIT_COMMIT_ENV]
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
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


# Set for every job by the DAG (workflow/rules/common.smk): the rule, wildcards and log file in each command,
# the validated config (and which module each rule belongs to) in a file named by its digest.
RULE_ENV, WILDCARDS_ENV, CONFIG_ENV = "GENSYNTH_RULE", "GENSYNTH_WILDCARDS", "GENSYNTH_CONFIG"
LOG_ENV = "GENSYNTH_LOG"  # training jobs write their epochs log beside it (gensynth.training.EpochsLog)


def job_context() -> dict[str, Any] | None:
    """The rule, its wildcards and the SLURM job id of the DAG job this process runs in (None by hand)."""
    rule = os.environ.get(RULE_ENV)
    if not rule:
        return None
    pairs = [item.split("=", 1) for item in os.environ.get(WILDCARDS_ENV, "").split(",") if "=" in item]
    return {"rule": rule, "wildcards": dict(pairs), "slurm_job_id": os.environ.get("SLURM_JOB_ID")}


def config_context(rule: str | None) -> dict[str, Any] | None:
    """The config section of the rule's module and the whole config's SHA-256, from the DAG's config file."""
    path = os.environ.get(CONFIG_ENV)
    if not path or not Path(path).is_file():
        return None
    context = json.loads(Path(path).read_text(encoding="utf-8"))
    module = context["rules"].get(rule)
    return {"module": module, "section": context["config"].get(module), "sha256": context["sha256"]}


def device_details(device: str) -> dict[str, Any]:
    """The device, and on CUDA the GPU model and the CUDA, cuDNN and driver versions."""
    details: dict[str, Any] = {"name": device}
    if not device.startswith("cuda"):
        return details
    import torch

    index = torch.device(device).index or 0
    details.update(
        gpu=torch.cuda.get_device_name(index),
        cuda=torch.version.cuda,
        cudnn=torch.backends.cudnn.version(),
        driver=nvidia_driver_version(),
    )
    return details


def nvidia_driver_version() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"], capture_output=True, text=True, timeout=10, check=True
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.strip().splitlines()[0] if out.strip() else None


def write_config_context(directory: str | os.PathLike, config: Mapping[str, Any], rules: Mapping[str, str]) -> Path:
    """The validated config and each rule's module, in a file named by the config's SHA-256 (the DAG writes
    it at parse time; jobs find it through $GENSYNTH_CONFIG)."""
    from .io import atomic_open

    digest = config_digest(config)
    path = Path(directory) / f"config-{digest[:16]}.json"
    with atomic_open(path, "w", encoding="utf-8") as handle:
        json.dump({"sha256": digest, "rules": dict(rules), "config": config}, handle, indent=1, sort_keys=True, default=str)
    return path


def config_digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def file_records(paths: Mapping[str, str | os.PathLike]) -> dict[str, dict[str, str]]:
    return {name: {"path": str(p), "sha256": sha256_file(p)} for name, p in paths.items()}


class Provenance:
    """Collects provenance over a job: create at its start, call :meth:`record` at its end."""

    def __init__(self, arguments: Mapping[str, Any] | None = None, device: str = "cpu"):
        self.arguments = dict(arguments or {})
        self.device = str(device)
        self.started = utc_now()

    def record(
        self,
        inputs: Mapping[str, str | os.PathLike] | Iterable[str | os.PathLike] = (),
        outputs: Mapping[str, str | os.PathLike] | None = None,
    ) -> dict[str, Any]:
        """``inputs`` and ``outputs`` (files already written, e.g. the NPZ a JSON sidecar describes) with
        their SHA-256; the script's arguments; the DAG's rule, wildcards and config section; code,
        packages, host, device and times."""
        if not isinstance(inputs, Mapping):
            inputs = {str(p): p for p in inputs}
        job = job_context()
        return {
            "inputs": file_records(inputs),
            "outputs": file_records(outputs or {}),
            "arguments": self.arguments,
            "config": config_context(job["rule"] if job else None),
            "job": job,
            "git_commit": git_commit(),
            "packages": package_versions(),
            "argv": list(sys.argv),
            "host": socket.gethostname(),
            "device": device_details(self.device),
            "started_utc": self.started,
            "finished_utc": utc_now(),
        }
