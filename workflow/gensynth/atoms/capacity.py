"""The atoms module's expensive step for a capacity plan (gensynth.capacity): each version's generation blocks,
made by its configured generator at its grid size (the dataset's splits are written block by block)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..capacity import Probe, Step, array_mb
from .corpus import block_size


def generation_block(device, generator: str, grid_size: int) -> Callable[[int], None]:
    """One block of images from ``generator`` (the device is unused: generation runs on the CPU)."""
    from ..seeding import numpy_generator
    from .generators import load_generator

    made = load_generator(generator)
    size = block_size(grid_size)

    def run(n: int) -> None:
        for block in range(n):
            made.batch(numpy_generator(block), size, grid_size)

    return run


def probes(section: dict[str, Any]) -> list[Probe]:
    found = []
    for version in section["versions"]:
        grid, size = version["grid_size"], block_size(version["grid_size"])
        step = Step(
            "gensynth.atoms.capacity:generation_block",
            {"generator": version["generator"], "grid_size": grid},
            math.ceil(version["num_images"] / size),
            f"{size:,} images of {grid} x {grid}",
        )
        found.append(Probe("atoms_dataset", 1, (step,), array_mb(version["num_images"], grid, grid, itemsize=1) * 2, gpu=False, variant=version["name"]))
    return found
