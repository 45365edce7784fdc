"""Pluggable image generators: ``--generator module:function``.

Two kinds of function are accepted, told apart by their required positional parameters:

* a batch function ``(rng, n) -> (images, labels)``: ``rng`` is a ``numpy.random.Generator``
  of its own for each block of images, ``images`` is ``(n, G, G)`` and ``labels`` ``(n,)``;
* a per-image function ``() -> (grid, label)`` like the group's ``generate_atomic_image()``:
  it is called once per image, in order, after ``np.random.seed(seed)`` and ``random.seed(seed)``,
  so one that draws from NumPy's or Python's global state is reproducible.

Either may take a ``grid_size`` keyword, which is then passed. Values must lie in 0..255
(floats are rounded to the nearest integer) and labels must be integers in 0..255.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import random
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import GensynthError

DEFAULT_GENERATOR = "gensynth.atoms:generate_batch"


@dataclass(frozen=True)
class ImageGenerator:
    """A generator function and how to call it."""

    name: str
    """As given on the command line, ``module:function`` or ``path/to/file.py:function``."""
    function: Callable
    per_image: bool
    """True for ``() -> (grid, label)``; such a function draws from global state, so it runs in one thread."""
    takes_grid_size: bool
    source: Path | None = None
    """The file the function was loaded from, when given as a path (recorded in the provenance)."""

    def seed_global_state(self, seed: int) -> None:
        """Seed the global generators a per-image function draws from (a batch function gets its own rng)."""
        if self.per_image:
            np.random.seed(seed)
            random.seed(seed)

    def batch(self, rng: np.random.Generator, n: int, grid_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` images (n, G, G) uint8 and labels (n,) uint8, checked."""
        kwargs = {"grid_size": grid_size} if self.takes_grid_size else {}
        if self.per_image:
            images = np.empty((n, grid_size, grid_size), np.uint8)
            labels = np.empty(n, np.uint8)
            for i in range(n):
                result = self.function(**kwargs)
                grid, label = self._pair(result, "grid, label")
                images[i] = self._uint8(grid, "grid", (grid_size, grid_size))
                labels[i] = self._uint8(np.asarray(label), "label", (), integer=True)
            return images, labels
        images, labels = self._pair(self.function(rng, n, **kwargs), "images, labels")
        return self._uint8(images, "images", (n, grid_size, grid_size)), self._uint8(labels, "labels", (n,), integer=True)

    def _pair(self, result, what: str):
        if not (isinstance(result, tuple) and len(result) == 2):
            raise GensynthError(f"--generator {self.name}: expected it to return a pair ({what}), got {type(result).__name__}")
        return result

    def _uint8(self, array, what: str, shape: tuple[int, ...], integer: bool = False) -> np.ndarray:
        array = np.asarray(array)
        if array.shape != shape:
            raise GensynthError(f"--generator {self.name}: {what} of shape {array.shape}, expected {shape}")
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating) or array.dtype == bool):
            raise GensynthError(f"--generator {self.name}: {what} of dtype {array.dtype}, expected numbers")
        if array.dtype == np.uint8:
            return array
        if array.size and not (np.all(np.isfinite(array)) and array.min() >= 0 and array.max() <= 255):
            raise GensynthError(f"--generator {self.name}: {what} has values outside 0..255 (min {array.min()}, max {array.max()})")
        if integer and array.size and np.issubdtype(array.dtype, np.floating) and not np.all(array == np.rint(array)):
            raise GensynthError(f"--generator {self.name}: {what} must be integers, got non-integer values")
        return np.rint(array).astype(np.uint8)


def _import_function(spec: str) -> tuple[Callable, Path | None]:
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise GensynthError(f"--generator {spec!r}: expected module:function or path/to/file.py:function")
    source = None
    try:
        if target.endswith(".py"):
            source = Path(target)
            if not source.is_file():
                raise GensynthError(f"--generator {spec!r}: file {target} not found")
            module_spec = importlib.util.spec_from_file_location(f"gensynth_user_generator_{source.stem}", source)
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module  # dataclasses and pickling look modules up here
            module_spec.loader.exec_module(module)
        else:
            if "" not in sys.path:  # a module beside the user's working directory
                sys.path.append("")
            module = importlib.import_module(target)
    except GensynthError:
        raise
    except Exception as exc:
        raise GensynthError(f"--generator {spec!r}: cannot import {target} ({type(exc).__name__}: {exc})") from None
    function = getattr(module, attribute, None)
    if not callable(function):
        raise GensynthError(f"--generator {spec!r}: {target} has no function {attribute!r}")
    return function, source


def load_generator(spec: str = DEFAULT_GENERATOR) -> ImageGenerator:
    """Import ``module:function`` (or ``file.py:function``) and tell its kind from its signature."""
    function, source = _import_function(spec)
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        raise GensynthError(f"--generator {spec!r}: cannot read the function's signature") from None
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in parameters if p.kind in positional and p.default is inspect.Parameter.empty]
    takes_grid_size = any(p.name == "grid_size" for p in parameters)
    if len(required) not in (0, 2):
        names = ", ".join(p.name for p in required)
        raise GensynthError(
            f"--generator {spec!r}: takes {len(required)} required argument(s) ({names}); expected (rng, n) for a batch "
            "function or none for a per-image function"
        )
    return ImageGenerator(spec, function, per_image=not required, takes_grid_size=takes_grid_size, source=source)
