"""``config/README.md``, made from the schemas' descriptions so the two cannot drift.

    python -m gensynth.config_docs > config/README.md

A test compares the file with this output.
"""

from __future__ import annotations

import sys
from typing import Any

from .config import SCHEMA_DIR, TOP_SCHEMA, format_value, load_schema_registry

HEADER = """# Configuration

`config/config.yaml` is the embedded default: the whole DAG at a scale that runs on a 2-core CPU
in minutes. `snakemake` checks it before any job runs: first against the schemas in
`workflow/schemas/`, which fill in the defaults below, then by each module's own checks in
`workflow/gensynth/<module>/dag.py`. A bad value stops the run with one line naming the key, the
value and what was expected. Full-scale settings sit beside it as partial configs that override
one module's section: `snakemake --configfile config/full/<module>.yaml`.

This file is made from the schemas (`python -m gensynth.config_docs > config/README.md`); edit the
schemas' descriptions, not this file.
"""


def kind(schema: dict[str, Any]) -> str:
    """The key's type in words, with its allowed values or bounds."""
    if "enum" in schema:
        return ", ".join(f"`{v}`" for v in schema["enum"])
    if schema.get("type") == "array":
        items = schema.get("items", {})
        inner = ", ".join(f"`{v}`" for v in items["enum"]) if "enum" in items else items.get("type", "value")
        return f"list of {inner}"
    bounds = []
    for word, key in (("≥", "minimum"), (">", "exclusiveMinimum"), ("≤", "maximum"), ("<", "exclusiveMaximum")):
        if key in schema:
            bounds.append(f"{word} {schema[key]}")
    kinds = schema.get("type", "value")
    return " ".join([" or ".join(kinds) if isinstance(kinds, list) else kinds, *bounds])


def rows(schema: dict[str, Any], registry, prefix: str = "") -> list[str]:
    """One table row per key, nested objects flattened to dotted keys (list items as ``key[]``)."""
    lines = []
    for name, sub in schema.get("properties", {}).items():
        if "$ref" in sub:
            sub = {**registry.contents(sub["$ref"]), **{k: v for k, v in sub.items() if k != "$ref"}}
        key = f"{prefix}{name}"
        # An object whose default is {} is a section: its keys get rows; one with a whole default (a
        # rule's resources) is one row.
        if sub.get("type") == "object" and "properties" in sub and not sub.get("default"):
            lines += rows(sub, registry, f"{key}.")
            continue
        default = f"`{format_value(sub['default'])}`" if "default" in sub else "required"
        description = " ".join(str(sub.get("description", "")).split())
        lines.append(f"| `{key}` | {kind(sub)} | {default} | {description} |")
        if sub.get("type") == "array" and sub.get("items", {}).get("type") == "object":
            lines += rows(sub["items"], registry, f"{key}[].")
    return lines


def render() -> str:
    registry = load_schema_registry(SCHEMA_DIR)
    top = registry.contents(TOP_SCHEMA)
    table_head = ["| key | type | default | meaning |", "|---|---|---|---|"]
    top_level = {k: v for k, v in top["properties"].items() if "$ref" not in v}
    parts = [HEADER, "## Top level", "", *table_head, *rows({"properties": top_level}, registry), ""]
    for name, sub in top["properties"].items():
        if "$ref" not in sub:
            continue
        schema = registry.contents(sub["$ref"])
        parts += [f"## `{name}`", "", " ".join(str(schema.get("description", "")).split()), "", *table_head, *rows(schema, registry, f"{name}."), ""]
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
