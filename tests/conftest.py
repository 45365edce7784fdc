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


# The tests of the default run's results, and only they, are named test_default_*. Under pytest-xdist
# (`make test`) they all go to one worker, so the DAG runs once per session while the other worker runs
# the rest; the collection check keeps the names and the fixture in step.
DEFAULT_RUN_TESTS = "::test_default_"


def pytest_collection_modifyitems(items):
    misnamed = [item.nodeid for item in items if ("default_run" in item.fixturenames) != (DEFAULT_RUN_TESTS in item.nodeid)]
    if misnamed:
        raise pytest.UsageError(f"tests that use default_run must be named test_default_*, and only they: {misnamed}")


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class DefaultRunOnOneWorker(LoadScopeScheduling):
        """Every other test is a scope of its own; the default run's tests are one."""

        def _split_scope(self, nodeid: str) -> str:
            return "default_run" if DEFAULT_RUN_TESTS in nodeid else nodeid

    return DefaultRunOnOneWorker(config, log)


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
