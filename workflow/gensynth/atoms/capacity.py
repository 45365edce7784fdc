"""The atoms module's expensive step for a capacity plan (gensynth.capacity): each version's generation blocks,
made by its configured generator at its grid size. The splits are written block by block, so a job holds a few
blocks per split writer, however many images it makes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..capacity import Probe, Step, array_mb
from .corpus import block_size
from .storage import QUEUE_BLOCKS

SPLITS = 3


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
        held = array_mb((SPLITS * QUEUE_BLOCKS + 2) * size, grid, grid, itemsize=1)  # the writers' queues, two blocks in the making
        found.append(Probe("atoms_dataset", 1, (step,), held, gpu=False, variant=version["name"]))
    return found
