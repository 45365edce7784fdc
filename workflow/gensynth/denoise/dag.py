"""What the DAG knows of denoise (being built)."""

from __future__ import annotations

from typing import Any

ROOT = "results/denoise"
SCRIPT_FLAGS: dict[str, tuple] = {}


def final_outputs(section: dict[str, Any]) -> list[str]:
    return []


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    pass
