"""The modules of the DAG: the one list that the Snakefile's includes, the config schema and the docs follow
(tests/test_contract.py checks every other place against it), and the whole config's check at parse time."""

from __future__ import annotations

import importlib
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


def validate_workflow_config(config: dict[str, Any]) -> dict[str, Any]:
    """The whole config as the Snakefile checks it before any job: the schemas first (defaults filled in), then
    each module's own checks (keys that must agree, files the config names). Every module's rules exist, active
    or not, for explicit targets, so every module's section is checked. Raises one GensynthError."""
    validate_config(config)
    for name in MODULES:
        module_dag(name).validate(config[name], config)
    return config
