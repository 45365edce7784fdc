"""A step's settings, each spelled once: a dataclass whose fields carry the default, the help and the config key.

From that one declaration come the script's flags (:func:`add_settings_arguments`), the settings back from
the parsed flags (:func:`settings_from_args`), the rule's flags (:func:`rule_flags`) and the check that the
schema's default is the dataclass's (tests/test_contract.py). Torch-free: the Snakefile and ``--help`` read it.

    @dataclass(frozen=True)
    class TrainSettings:
        lr: float = in_section("train")(4e-3, "AdamW learning rate")   # config key train.lr, flag --lr

A config key reaches its script as one flag spelled from the key's last part, the same in every module:
``block_out_channels`` is ``--block-out-channels``, ``N_next`` ``--n-next``; ``flag=`` keeps a flag the
group's users already type (atoms' ``--train-fraction``). Tuples are space-separated values, booleans
``--key`` / ``--no-key``, ``Literal`` types a choice; strings reach the shell quoted.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import shlex
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Literal, get_args, get_origin, get_type_hints

from .config import schema_node


def setting(
    default: Any,
    help: str = "",
    *,
    section: str | None = None,
    key: str | None = None,
    flag: str | None = None,
    parse: Callable[[str], Any] | None = None,
) -> Any:
    """A settings field. Its config key is ``key``, else ``<section>.<field name>`` (``section=""``: top
    level); with neither, the setting is the script's alone (a flag the DAG leaves at its default).
    ``help`` defaults to the key's description in the schema; ``parse`` replaces the type's own parser."""
    metadata = {"help": help, "section": section, "key": key, "flag": flag, "parse": parse}
    return dataclasses.field(default=default, metadata=metadata)


def in_section(section: str) -> Callable[..., Any]:
    """:func:`setting` for the fields of one config section (``""``: the module's top level)."""
    return functools.partial(setting, section=section)


def config_key(field: dataclasses.Field) -> str | None:
    """The field's dotted key in its module's config section, or None for a script-only setting."""
    meta = field.metadata
    if meta.get("key"):
        return meta["key"]
    if meta.get("section") is None:
        return None
    return f"{meta['section']}.{field.name}" if meta["section"] else field.name


def key_flag(key: str) -> str:
    """A config key's flag: its last part, lower-cased and dashed (``model.n_T`` is ``--n-t``)."""
    return "--" + key.rsplit(".", 1)[-1].lower().replace("_", "-")


def flag_name(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or key_flag(config_key(field) or field.name)


def config_fields(cls: type) -> Iterator[tuple[dataclasses.Field, str]]:
    """(field, config key) of every setting of ``cls`` that the config holds."""
    for field in dataclasses.fields(cls):
        key = config_key(field)
        if key is not None:
            yield field, key


def help_text(field: dataclasses.Field, module: str) -> str | None:
    """The field's help, else its config key's description in the module's schema (spelled once)."""
    text = field.metadata.get("help") or ""
    key = config_key(field)
    if not text and key is not None:
        text = schema_node(module, key).get("description", "")
    return text.replace("%", "%%") or None


def add_settings_arguments(parser: argparse.ArgumentParser | argparse._ArgumentGroup, cls: type, module: str, underscores: bool = False) -> None:
    """One flag per field of ``cls``, its default the field's, its destination the field's name; with
    ``underscores``, each also in the underscore spelling (``--batch_size``) of scripts whose users type it."""
    hints = get_type_hints(cls)
    for field in dataclasses.fields(cls):
        kind = hints[field.name]
        options: dict[str, Any] = {"dest": field.name, "default": field.default, "help": help_text(field, module)}
        origin, members = get_origin(kind), get_args(kind)
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif origin is Literal:
            options.update(choices=members, type=type(members[0]))
        elif origin is tuple:
            options.update(type=members[0], nargs="+" if members[-1] is Ellipsis else len(members))
        else:
            options["type"] = kind
        if field.metadata.get("parse"):
            options["type"] = field.metadata["parse"]
        name = flag_name(field)
        spellings = dict.fromkeys([name, "--" + name[2:].replace("-", "_")] if underscores else [name])
        parser.add_argument(*spellings, **options)


def settings_from_args(cls: type, args: argparse.Namespace | Any) -> Any:
    """The settings back from parsed flags (or from any object with the fields as attributes)."""
    values = {field.name: getattr(args, field.name) for field in dataclasses.fields(cls)}
    return cls(**{name: tuple(value) if isinstance(value, list) else value for name, value in values.items()})


def narrow(settings: Any, cls: type) -> Any:
    """The part of a step's settings that ``cls`` (one of its bases) holds."""
    return settings_from_args(cls, settings)


def lookup(section: Mapping[str, Any], key: str) -> Any:
    value = section
    for part in key.split("."):
        value = value[part]
    return value


def flag(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return name if value else f"--no-{name[2:]}"
    if isinstance(value, (list, tuple)):
        return f"{name} {' '.join(shlex.quote(str(v)) for v in value)}"
    return f"{name} {shlex.quote(str(value))}"


def rule_flags(section: Mapping[str, Any], cls: type) -> str:
    """The flags a rule passes: ``--key value`` for every setting of ``cls`` the module's config section holds."""
    return " ".join(flag(flag_name(field), lookup(section, key)) for field, key in config_fields(cls))


def positive_int(text: str) -> int:
    """A flag's parser for counts: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected an integer >= 1")
    return value
