"""Step settings: one dataclass gives the script's flags, the settings back, the rule's flags and the help."""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass
from typing import Literal

import pytest

from gensynth.steps import add_settings_arguments, config_key, in_section, narrow, positive_int, rule_flags, setting, settings_from_args

train = in_section("train")


@dataclass(frozen=True)
class Train:
    lr: float = train(1e-3, "learning rate")
    block_out_channels: tuple[int, ...] = train((16, 32), "channels")
    attention: bool = train(False, "attention")


@dataclass(frozen=True)
class Step(Train):
    n_t: int = setting(50, "timesteps", key="model.n_T")
    sampler: Literal["ddim", "ddpm"] = setting("ddim", "sampler", key="sampling.sampler")
    range: tuple[float, float] = setting((0.1, 0.5), "low high", key="mix_ratio_range", flag="--mix")
    steps: int = setting(10, "steps", key="sampling.steps", parse=positive_int)
    note: str = setting("a b", "a name with a space", key="note")
    every: float = setting(600.0, "script-only: seconds between saves")


SECTION = {
    "train": {"lr": 0.02, "block_out_channels": [8, 8, 16], "attention": True},
    "model": {"n_T": 400},
    "sampling": {"sampler": "ddpm", "steps": 3},
    "mix_ratio_range": [0.2, 0.3],
    "note": "it's here",
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser()
    add_settings_arguments(p, Step, "madness")
    return p


def test_the_rules_flags_parse_back_to_the_configs_values():
    flags = rule_flags(SECTION, Step)
    assert "--every" not in flags, "a script-only setting is left at its default"
    settings = settings_from_args(Step, parser().parse_args(shlex.split(flags)))
    assert settings == Step(0.02, (8, 8, 16), True, 400, "ddpm", (0.2, 0.3), 3, "it's here", 600.0)


def test_defaults_flags_and_keys_come_from_the_fields():
    assert settings_from_args(Step, parser().parse_args([])) == Step()
    options = {o: a for a in parser()._actions for o in a.option_strings}
    assert {"--lr", "--block-out-channels", "--attention", "--no-attention", "--n-t", "--sampler", "--mix", "--steps", "--note", "--every"} <= set(options)
    assert options["--n-t"].dest == "n_t" and options["--sampler"].choices == ("ddim", "ddpm") and options["--mix"].nargs == 2
    keys = {f: config_key(Step.__dataclass_fields__[f]) for f in ("lr", "n_t", "range", "every")}
    assert keys == {"lr": "train.lr", "n_t": "model.n_T", "range": "mix_ratio_range", "every": None}


@pytest.mark.parametrize("argv", [["--sampler", "euler"], ["--steps", "0"], ["--mix", "0.1"], ["--lr", "fast"]])
def test_a_bad_flag_is_a_usage_error(argv):
    with pytest.raises(SystemExit) as exit_info:
        parser().parse_args(argv)
    assert exit_info.value.code == 2


def test_help_is_the_fields_or_else_the_schemas_description():
    @dataclass
    class Described:
        n_t: int = setting(400, key="model.n_T")

    p = argparse.ArgumentParser()
    add_settings_arguments(p, Described, "madness")
    action = next(a for a in p._actions if a.dest == "n_t")
    assert action.help and "timesteps" in action.help.lower()
    assert next(a for a in parser()._actions if a.dest == "every").help == "script-only: seconds between saves"


def test_narrow_keeps_one_sections_fields():
    assert narrow(Step(lr=0.5), Train) == Train(lr=0.5)


def test_the_underscore_spelling_is_the_same_flag():
    p = argparse.ArgumentParser()
    add_settings_arguments(p, Train, "madness", underscores=True)
    assert p.parse_args(["--block_out_channels", "8", "--no-attention"]).block_out_channels == [8]
    assert p.parse_args(["--block-out-channels", "4"]).block_out_channels == [4]
