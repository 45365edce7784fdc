"""Config validation: defaults from the schemas, one clear line per bad value, before any job."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake
from gensynth.config import validate_config
from gensynth.errors import GensynthError

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())


def with_override(config: dict, key: str, value) -> dict:
    """A copy of ``config`` with the dotted ``key`` (``a.b[0].c``) set, or deleted if value is DELETE."""
    config = copy.deepcopy(config)
    parts = [int(p) if p.isdigit() else p for p in re.findall(r"[^.\[\]]+", key)]
    node = config
    for part in parts[:-1]:
        node = node[part]
    if value is DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value
    return config


class Delete:
    """Marks a key to remove; its repr keeps the test ids the same in every pytest-xdist worker."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = Delete()

BAD_CONFIGS = [
    # (key, value, what the one line must say)
    ("device", "gpu", "config key 'device' = gpu: expected one of auto, cuda, mps, cpu"),
    ("device", 3, "config key 'device' = 3: expected a value of type string"),
    ("modules", ["atoms", "genaugg"], "config key 'modules[1]' = genaugg: expected one of"),
    ("modules", "atoms", "config key 'modules' = atoms: expected a value of type array"),
    ("modules", ["atoms", "atoms"], "expected a list without repeated items"),
    ("madnes", {}, "config key '(top level)': unknown key 'madnes'"),
    ("atoms", DELETE, "missing required key 'atoms'"),
    ("atoms", [], "config key 'atoms' = []: expected a value of type object"),
]


@pytest.mark.parametrize("key,value,message", BAD_CONFIGS, ids=[f"{k}={v!r}"[:40] for k, v, _ in BAD_CONFIGS])
def test_bad_config_gives_one_clear_line(key, value, message):
    with pytest.raises(GensynthError) as error:
        validate_config(with_override(DEFAULT, key, value))
    line = str(error.value)
    assert "\n" not in line
    assert message in line


def test_defaults_are_filled_from_the_schema():
    config = validate_config(with_override(DEFAULT, "device", DELETE))
    assert config["device"] == "auto"
    # Inside a module's own schema file too (a $ref'd file with its own $schema once skipped this).
    config = validate_config(with_override(DEFAULT, "atoms", {}))
    assert config["atoms"]["versions"], "atoms' default versions were not filled in"


def test_full_scale_configs_validate():
    for partial in sorted((ROOT / "config/full").glob("*.yaml")):
        merged = copy.deepcopy(DEFAULT)
        for section, values in yaml.safe_load(partial.read_text()).items():
            merged[section] = {**merged.get(section, {}), **values}
        validate_config(merged)


def test_snakemake_stops_before_any_job(project: Path):
    result = snakemake(project, "--cores", "1", "--config", "device=gpu", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert "invalid config: config key 'device' = gpu: expected one of auto, cuda, mps, cpu" in output
    assert not (project / "results").exists() and not (project / "logs").exists()
