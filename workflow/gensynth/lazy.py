"""Package exports imported on first use (PEP 562), so that importing one light submodule (a ``dag.py``
at Snakefile parse time, a settings table in a job's argument parsing) does not import the whole package.

A package declares its table as a literal ``_EXPORTS = {name: submodule}`` and passes it here; the code digest
(gensynth.codedigest) reads that literal, so a job that imports ``name`` reruns when its submodule changes."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def lazy_exports(package: str, exports: dict[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``package``: each name of ``exports`` comes from its submodule, imported
    the first time the name is asked for."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{exports[name]}"), name)

    return __getattr__
