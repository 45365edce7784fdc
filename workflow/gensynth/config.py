"""Config validation against the JSON schemas in ``workflow/schemas/``.

The top schema refers to one schema file per module (``$ref: atoms.schema.yaml``).
Defaults are filled in from the schemas, and the first problem found is reported as
one line: the key's dotted path, its value, and what was expected.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from .errors import GensynthError

SCHEMA_DIR = Path(__file__).resolve().parents[1] / "schemas"
# libyaml's parser where PyYAML was built with it: the schemas are read at every parse of the DAG.
SCHEMA_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
TOP_SCHEMA = "config.schema.yaml"


def load_schema_registry(schema_dir: Path) -> Registry:
    resources = []
    for path in sorted(schema_dir.glob("*.schema.yaml")):
        contents = yaml.load(path.read_text(), Loader=SCHEMA_LOADER)
        if path.name != TOP_SCHEMA:
            # A $schema in a referenced file makes jsonschema validate it with the plain
            # validator class, which fills no defaults: the top schema's dialect applies.
            contents.pop("$schema", None)
        resources.append((path.name, Resource.from_contents(contents, default_specification=DRAFT202012)))
    return Registry().with_resources(resources)


def _with_defaults(validator_class):
    """A validator that also writes each property's ``default`` into the instance."""
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, schema):
        if isinstance(instance, dict):
            for name, subschema in properties.items():
                if "default" not in subschema and "$ref" in subschema:  # a default beside the $ref wins
                    subschema = validator._resolver.lookup(subschema["$ref"]).contents
                if "default" in subschema and name not in instance:
                    instance[name] = copy.deepcopy(subschema["default"])
        yield from validate_properties(validator, properties, instance, schema)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


DefaultFillingValidator = _with_defaults(jsonschema.Draft202012Validator)


def key_path(error: jsonschema.ValidationError) -> str:
    parts = ""
    for part in error.absolute_path:
        parts += f"[{part}]" if isinstance(part, int) else (f".{part}" if parts else str(part))
    return parts or "(top level)"


def format_value(value: Any) -> str:
    """A config value as YAML writes it inline: ``a``, ``3``, ``[50, 900]``, ``''``."""
    return yaml.safe_dump(value, default_flow_style=True, sort_keys=False, width=10_000).strip().removesuffix("...").strip()


def describe(error: jsonschema.ValidationError) -> str:
    """One line: which key, which value, what was expected."""
    key, kind, expected = key_path(error), error.validator, error.validator_value
    value = format_value(error.instance)
    if kind == "required":
        missing = [name for name in expected if name not in error.instance]
        return f"config key '{key}': missing required key '{missing[0]}'"
    if kind == "additionalProperties":
        known = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(known))
        return f"config key '{key}': unknown key '{extra[0]}' (expected one of: {', '.join(known)})"
    wants = {
        "type": lambda: f"a value of type {expected}",
        "enum": lambda: "one of " + ", ".join(map(str, expected)),
        "minimum": lambda: f"a number >= {expected}",
        "exclusiveMinimum": lambda: f"a number > {expected}",
        "maximum": lambda: f"a number <= {expected}",
        "exclusiveMaximum": lambda: f"a number < {expected}",
        "minItems": lambda: f"a list of at least {expected} item(s)",
        "maxItems": lambda: f"a list of at most {expected} item(s)",
        "uniqueItems": lambda: "a list without repeated items",
        "pattern": lambda: f"a string matching {expected}",
        "minLength": lambda: f"a string of at least {expected} character(s)",
    }
    expectation = wants[kind]() if kind in wants else error.message
    return f"config key '{key}' = {value}: expected {expectation}"


SCALAR_TYPES = {"integer": int, "number": (int, float), "boolean": bool}


def coerce_strings(value: Any, schema: dict[str, Any], registry: Registry) -> Any:
    """Snakemake hands nested ``--config`` values over as strings (``'10'`` for 10): read each string the
    schema wants as a number, boolean or list as YAML, and keep it when that gives the wanted type.
    ``--config`` and ``--configfile`` overrides then give the same config."""
    if "$ref" in schema:
        schema = registry.contents(schema["$ref"])
    wanted = schema.get("type")
    if isinstance(value, str) and wanted in (*SCALAR_TYPES, "array"):
        try:
            parsed = yaml.safe_load(value)
        except yaml.YAMLError:
            return value
        matches = isinstance(parsed, list) if wanted == "array" else isinstance(parsed, SCALAR_TYPES[wanted])
        if matches and not (wanted != "boolean" and isinstance(parsed, bool)):
            return coerce_strings(parsed, schema, registry)
        return value
    if isinstance(value, dict) and "properties" in schema:
        return {k: coerce_strings(v, schema["properties"][k], registry) if k in schema["properties"] else v for k, v in value.items()}
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [coerce_strings(item, schema["items"], registry) for item in value]
    return value


def validate_config(config: dict[str, Any], schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    """Validate in place, filling defaults; raise GensynthError with one line on the first problem."""
    registry = load_schema_registry(schema_dir)
    schema = registry.contents(TOP_SCHEMA)
    coerced = coerce_strings(config, schema, registry)
    config.clear()
    config.update(coerced)
    validator = DefaultFillingValidator(schema, registry=registry)
    errors = sorted(validator.iter_errors(config), key=lambda e: (len(list(e.absolute_path)), list(map(str, e.absolute_path))))
    if errors:
        error = jsonschema.exceptions.best_match(errors)
        while error.context:  # oneOf/anyOf: report the most specific branch
            error = jsonschema.exceptions.best_match(error.context)
        raise GensynthError(describe(error))
    return config


@functools.cache
def module_schema(module: str, schema_dir: Path = SCHEMA_DIR) -> dict[str, Any]:
    path = schema_dir / f"{module}.schema.yaml"
    if not path.is_file():
        raise GensynthError(f"{path}: no schema for module {module!r}")
    return yaml.load(path.read_text(), Loader=SCHEMA_LOADER)


def schema_node(module: str, key: str) -> dict[str, Any]:
    """The schema of ``<module>.<key>`` (dotted, e.g. ``sample.num_inference_steps``)."""
    node = module_schema(module)
    for part in key.split("."):
        if node.get("type") == "array":  # a list of objects: the key is one item's (atoms' versions)
            node = node["items"]
        properties = node.get("properties", {})
        if part not in properties:
            raise KeyError(f"{module}.schema.yaml has no key {key!r} (at {part!r})")
        node = properties[part]
    return node


def schema_default(module: str, key: str) -> Any:
    """The schema's default of ``<module>.<key>``: the step settings' defaults equal it (tests/test_contract.py)."""
    node = schema_node(module, key)
    if "default" not in node:
        raise KeyError(f"{module}.schema.yaml: key {key!r} has no default")
    return copy.deepcopy(node["default"])
