"""Shared fixtures: a copy of the project to run Snakemake in, and one run of the default DAG."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

# One thread in the test process: two cores shared with the DAG's jobs, and oversubscribed
# torch threads spin instead of working.
torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Job scripts run as `python scripts/...`: the test's interpreter must come first on PATH.
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "GENSYNTH_PROGRESS": "0"}


def project_files() -> list[str]:
    """Tracked files and untracked ones that git does not ignore."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True, check=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def copy_project(dest: Path) -> Path:
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; on failure the assertion shows its output."""
    result = subprocess.run(
        [str(BIN / "snakemake"), *args], cwd=workdir, env=ENV, capture_output=True, text=True, timeout=timeout
    )
    if check:
        assert result.returncode == 0, f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def pytest_collection_modifyitems(items):
    """Under pytest-xdist (`make test`), every test of the default run's results goes to one worker, so
    the DAG runs once per session."""
    for item in items:
        if "default_run" in item.fixturenames:
            item.add_marker(pytest.mark.xdist_group("default_run"))


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh copy of the project, to run Snakemake in without touching the checkout."""
    return copy_project(tmp_path / "project")


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """The whole DAG on config/config.yaml, run once per session; returns the project copy."""
    workdir = copy_project(tmp_path_factory.mktemp("default_run"))
    snakemake(workdir, "--profile", "profiles/local", "--cores", "2")
    return workdir
