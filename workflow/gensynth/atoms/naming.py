"""The files of a dataset version, named once: the rule's outputs and what the writer writes come from
:func:`dataset_files` (no NumPy: the Snakefile reads this at parse time)."""

from __future__ import annotations

import os

SPLIT_NAMES = ("train", "val", "test")


def split_file(split: str) -> str:
    """A split's NPZ file name (``train.npz``)."""
    return f"{split}.npz"


def dataset_files(folder: str | os.PathLike = "") -> dict[str, str]:
    """Every file of a dataset version, by role (each split, ``metadata``, ``report``): its path in ``folder``,
    or its bare name without one. metadata.json comes after the splits: it lists their checksums."""
    names = {**{split: split_file(split) for split in SPLIT_NAMES}, "metadata": "metadata.json", "report": "validation_report.png"}
    return {role: os.path.join(folder, name) for role, name in names.items()}
