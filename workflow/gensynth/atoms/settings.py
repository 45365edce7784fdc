"""The atoms step's settings, torch-free: each field names its key in one version's entry
(``atoms.versions[i].<key>``), and the script's flags, the rule's flags and the schema check come from them
(gensynth.steps)."""

from __future__ import annotations

from dataclasses import dataclass

from ..steps import in_section, setting

version = in_section("versions")


@dataclass(frozen=True)
class GenerateDatasetSettings:
    """``generate_dataset.py``: one version's settings (but its name and ``num_images``, which has no default)."""

    seed: int = version(42)
    grid_size: int = version(16)
    # The group's flag names (its users type them), not the keys' last parts.
    train_fraction: float = setting(0.8, key="versions.splits.train", flag="--train-fraction")
    val_fraction: float = setting(0.1, key="versions.splits.val", flag="--val-fraction")
    test_fraction: float = setting(0.1, key="versions.splits.test", flag="--test-fraction")
    generator: str = version("gensynth.atoms:generate_batch")


# Each script step and its settings (tests/test_contract.py checks them against the schema and the script).
STEPS = {"generate_dataset": GenerateDatasetSettings}
