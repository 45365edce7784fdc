"""The modules of the DAG: the one list that the Snakefile's includes, the config schema and the docs follow
(tests/test_modules.py checks every other place against it)."""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = ("atoms", "replicas", "madness", "denoise", "genaug")


def module_dag(name: str) -> ModuleType:
    """``gensynth.<name>.dag``: the module's paths, input functions, ``final_outputs`` and ``validate``."""
    return importlib.import_module(f"gensynth.{name}.dag")
