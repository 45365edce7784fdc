"""What every module's ``dag.py`` shares: rule resources, wildcard patterns, config checks.

Plain Python without heavy imports: the Snakefile reads it at parse time. A step's flags come from its
settings dataclass (gensynth.steps).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from .config import format_value
from .errors import GensynthError
from .steps import flag, key_flag, lookup


def config_flags(section: dict[str, Any], keys: Iterable[str]) -> str:
    """``--key value`` for each dotted key of ``section``, in order (settings outside the step dataclasses:
    madness's per-scenario sizes)."""
    return " ".join(flag(key_flag(key), lookup(section, key)) for key in keys)


def rule_resources(section: dict[str, Any], rule: str) -> dict[str, int]:
    """The rule's ``mem_mb`` and ``runtime`` (minutes per attempt) from the module's ``resources`` section."""
    declared = section["resources"][rule]
    return {key: declared[key] for key in ("mem_mb", "runtime")}


def one_of(values: Iterable[str]) -> str:
    """A wildcard constraint that admits exactly these values."""
    return "|".join(re.escape(str(v)) for v in values)


def uses_phantom(section: dict[str, Any]) -> bool:
    """Whether a module's section makes its own data (``data.source: phantom``) rather than reading the user's."""
    return section["data"]["source"] == "phantom"


def config_error(key: str, value: Any, expected: str) -> GensynthError:
    """One line: which key, which value, what was expected (the schema's errors read the same)."""
    return GensynthError(f"config key '{key}' = {format_value(value)}: expected {expected}")


def require_file(key: str, path: str) -> None:
    """A file the config names must exist when the DAG is built, so that no job later finds it missing
    (and Snakemake never mistakes older results for sources)."""
    if not path:
        raise config_error(key, path, "a path to a file")
    if not os.path.isfile(path):
        raise config_error(key, path, "an existing file (not found)")


def visible_gpus(environ: dict[str, str] | None = None) -> int:
    """GPUs this machine's jobs can see, without importing torch: CUDA_VISIBLE_DEVICES when set, else
    ``nvidia-smi -L``; 0 on a machine without NVIDIA GPUs (its gpu=1 jobs run on the CPU, side by side)."""
    import subprocess

    environ = os.environ if environ is None else environ
    if "CUDA_VISIBLE_DEVICES" in environ:
        return len([d for d in environ["CUDA_VISIBLE_DEVICES"].split(",") if d.strip() and d.strip() != "-1"])
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(1 for line in listing.splitlines() if line.startswith("GPU "))
