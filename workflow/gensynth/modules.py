"""The modules of the DAG: the one list that the Snakefile's includes, the config schema and the docs follow
(tests/test_contract.py checks every other place against it), and the whole config's check at parse time."""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from types import ModuleType
from typing import Any

from .config import validate_config

MODULES = ("atoms", "replicas", "madness", "denoise", "genaug")


def module_dag(name: str) -> ModuleType:
    """``gensynth.<name>.dag``: the module's paths, input functions, ``final_outputs`` and ``validate``."""
    return importlib.import_module(f"gensynth.{name}.dag")


def module_settings(name: str) -> ModuleType:
    """``gensynth.<name>.settings``: the settings dataclass of each script step (``STEPS``), torch-free."""
    return importlib.import_module(f"gensynth.{name}.settings")


def validate_workflow_config(config: dict[str, Any], workflow_dir: str | Path | None = None) -> dict[str, Any]:
    """The whole config as the Snakefile checks it before any job: the schemas first (defaults filled in), then
    the files the workflow ships located (:func:`locate_shipped_files`, given the workflow's folder), then each
    module's own checks (keys that must agree, files the config names). Every module's rules exist, active or
    not, for explicit targets, so every module's section is checked. Raises one GensynthError."""
    validate_config(config)
    if workflow_dir is not None:
        locate_shipped_files(config, Path(workflow_dir))
    for name in MODULES:
        module_dag(name).validate(config[name], config)
    return config


SHIPPED = "resources/"  # the folder of files the workflow ships (ROI windows, prompt layouts)


def locate_shipped_files(node: Any, workflow_dir: Path) -> None:
    """Point each ``resources/...`` path of the config that the working directory lacks at the workflow's own
    copy, in place: a run from another folder (``snakemake -d``, a module import) finds what the workflow
    ships, and a working directory's own ``resources/`` still wins."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        if isinstance(value, str) and value.startswith(SHIPPED) and not os.path.exists(value) and (workflow_dir / value).exists():
            node[key] = str(workflow_dir / value)
        else:
            locate_shipped_files(value, workflow_dir)


def module_capacity(name: str) -> ModuleType:
    """``gensynth.<name>.capacity``: the module's expensive steps for a capacity plan (``probes(section)``)."""
    return importlib.import_module(f"gensynth.{name}.capacity")
