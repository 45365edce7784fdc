"""What the DAG knows of atoms: one dataset per configured version, its files and its checks.

Plain Python (the Snakefile reads it at parse time): no NumPy work, no torch.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from ..dagtools import config_error, one_of
from .naming import dataset_files

ROOT = "results/atoms"


def version_dir(version: str = "{version}") -> str:
    return f"{ROOT}/{version}"


def path(name: str, version: str = "{version}") -> str:
    """File ``name`` of a version (a role of naming.dataset_files: train, val, test, metadata, report)."""
    return dataset_files(version_dir(version))[name]


def versions(section: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {version["name"]: version for version in section["versions"]}


def version_section(section: dict[str, Any], name: str) -> dict[str, Any]:
    """Version ``name``'s entry where the settings' keys (``versions.<key>``, as in the schema) find it."""
    return {"versions": versions(section)[name]}


def version_pattern(section: dict[str, Any]) -> str:
    return one_of(versions(section))


def final_outputs(section: dict[str, Any]) -> list[str]:
    return [file for version in versions(section) for file in dataset_files(version_dir(version)).values()]


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    """Unique names, splits summing to 1, and a generator that can be found."""
    seen = set()
    for index, version in enumerate(section["versions"]):
        key = f"atoms.versions[{index}]"
        if version["name"] in seen:
            raise config_error(f"{key}.name", version["name"], "a name no other version has")
        seen.add(version["name"])
        total = sum(version["splits"].values())
        if abs(total - 1.0) > 1e-6:
            raise config_error(f"{key}.splits", version["splits"], f"fractions summing to 1, not {total:g}")
        check_generator(f"{key}.generator", version["generator"])


def check_generator(key: str, spec: str) -> None:
    """``path/to/file.py:function`` must name a file (relative to the working directory), ``module:function``
    a module that can be imported (it is not imported here)."""
    target = spec.rsplit(":", 1)[0]
    if target.endswith(".py"):
        if not os.path.isfile(target):
            raise config_error(key, spec, f"a generator file that exists ({target} not found)")
        return
    try:
        found = importlib.util.find_spec(target)
    except (ImportError, ValueError):
        found = None
    if found is None:
        raise config_error(key, spec, f"an importable module ({target} not found)")
