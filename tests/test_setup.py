"""The set-up stays consistent: one set of pins, the README's two commands, CI calling the tests."""

from __future__ import annotations

import importlib.metadata
import re
import subprocess
import tomllib

import yaml

from conftest import ROOT

# Snakemake drives the jobs; the jobs' own environments need only what the scripts import.
DRIVER_ONLY = {"snakemake", "snakemake-executor-plugin-slurm"}


def pinned(requirements) -> dict[str, str]:
    pins = {}
    for requirement in requirements:
        name, _, version = requirement.partition("==")
        assert version, f"{requirement!r} is not pinned with =="
        pins[name.strip().lower()] = version.strip()
    return pins


def project_pins() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return pinned(project["dependencies"])


def test_conda_envs_mirror_the_pins():
    runtime = {name: version for name, version in project_pins().items() if name not in DRIVER_ONLY}
    for env_file in ("envs/cpu.yaml", "envs/cuda.yaml"):
        env = yaml.safe_load((ROOT / env_file).read_text())
        pip_section = next(dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict))
        env_pins = pinned(line for line in pip_section if not line.startswith("--"))
        assert env_pins == runtime, f"{env_file} differs from pyproject.toml's pins"
        assert "python=3.11" in env["dependencies"]


def test_the_environment_has_the_pinned_versions():
    """What `make setup` installed is what pyproject.toml pins (a local build tag such as torch's +cpu aside)."""
    for name, version in project_pins().items():
        assert importlib.metadata.version(name).split("+")[0] == version, name


def test_readme_starts_with_the_two_setup_commands():
    readme = (ROOT / "README.md").read_text()
    commands = re.findall(r"^\s*(make \w+)\s*$", readme, flags=re.M)
    assert commands[:2] == ["make run", "make test"]


def test_ci_runs_make_test():
    script = (ROOT / ".ci/run").read_text()
    assert re.search(r"^make test$", script, flags=re.M)
    # What make would run (-n prints the commands, set-up included where the pins changed): pytest last.
    for target, last in (("test", ".venv/bin/python -m pytest"), ("run", ".venv/bin/snakemake --profile profiles/local")):
        commands = subprocess.run(["make", "-n", "-s", target], cwd=ROOT, capture_output=True, text=True, check=True, timeout=60)
        assert commands.stdout.splitlines()[-1].startswith(last), commands.stdout
