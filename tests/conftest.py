"""Shared fixtures: a copy of the project to run Snakemake in, and one run of the whole DAG on the test config."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import update_config

from gensynth.config import validate_config
from gensynth.errors import GensynthError
from gensynth.io import load_yaml
from gensynth.modules import validate_workflow_config

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
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listing.split("\0") if name and (ROOT / name).is_file()]


def copy_project(dest: Path) -> Path:
    for name in project_files():
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, target)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run snakemake in ``workdir``; on failure the assertion shows its output, and a timeout names the command."""
    try:
        result = subprocess.run([str(BIN / "snakemake"), *args], cwd=workdir, env=ENV, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"snakemake {' '.join(args)} (in {workdir}) did not finish within {timeout} s:\n{(exc.stderr or b'')[-4000:]!r}")
    if check:
        assert result.returncode == 0, f"snakemake {' '.join(args)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-6000:]}"
    return result


def job_counts(output: str) -> dict[str, int]:
    """Rule -> job count, from the 'Job stats' table of a dry-run (with its `total` row)."""
    table = output[output.index("Job stats:") :]
    rows = re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)
    return {rule: int(count) for rule, count in rows}


# The whole DAG at test scale: every rule of every module, at the smallest sizes that take the default run's
# code paths. The default config itself is checked by dry-runs (tests/test_dag.py) and built by `make run`.
DAG_CONFIG = "tests/configs/dag.yaml"  # relative to the project and to each copy of it
# The DAG run's own limit: about 3 minutes of jobs on a quiet 2-core machine, so this leaves more than three
# times that for a slow day with the other worker's tests beside it.
DAG_TIMEOUT = 1500


def default_config() -> dict:
    """config/config.yaml with the schemas' defaults filled in."""
    return validate_config(load_yaml(ROOT / "config/config.yaml"))


def merged_config(*overrides: str, workdir: Path = ROOT) -> dict:
    """config/config.yaml updated by the ``overrides`` config files (paths in ``workdir``), as Snakemake merges
    ``--configfile config/config.yaml <overrides>``, with the schemas' defaults filled in."""
    config = load_yaml(workdir / "config/config.yaml")
    for override in overrides:
        update_config(config, load_yaml(workdir / override))
    return validate_config(config)


def dag_config() -> dict:
    """The config the DAG run uses."""
    return merged_config(DAG_CONFIG)


def config_error(override: str, cwd: Path = ROOT) -> str:
    """The one-line error of config/config.yaml updated by ``override`` (YAML text), from the check the Snakefile
    runs before any job (a dry-run prints it after "invalid config: "; tests/test_config.py runs one)."""
    config = load_yaml(ROOT / "config/config.yaml")
    update_config(config, yaml.safe_load(override))
    previous = Path.cwd()
    os.chdir(cwd)  # paths in the config are the working directory's, as in a run
    try:
        validate_workflow_config(config)
    except GensynthError as exc:
        return str(exc)
    finally:
        os.chdir(previous)
    pytest.fail(f"no config error for {override!r}")


# The tests of the DAG run's results, and only they, are named test_dag_*. Under pytest-xdist (`make test`)
# they all go to one worker, so the DAG runs once per session while the other worker runs the rest; the
# collection check keeps the names and the fixture in step.
DAG_RUN_TESTS = "::test_dag_"


def pytest_collection_modifyitems(items):
    misnamed = [item.nodeid for item in items if ("dag_run" in item.fixturenames) != (DAG_RUN_TESTS in item.nodeid)]
    if misnamed:
        raise pytest.UsageError(f"tests that use dag_run must be named test_dag_*, and only they: {misnamed}")
    # The DAG run is the suite's longest piece of work: its tests come first, so that it starts at once; the
    # SLURM tests next, which mostly wait on the cluster, so that their wait overlaps the rest.
    items.sort(key=lambda item: (DAG_RUN_TESTS not in item.nodeid, item.get_closest_marker("slurm") is None))


def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    config.option.loadscopereorder = False  # keep the collection's order: the DAG run's scope first

    class DagRunOnOneWorker(LoadScopeScheduling):
        """The DAG run's tests are one scope; every other test file is one (its module fixtures run once)."""

        def _split_scope(self, nodeid: str) -> str:
            return "dag_run" if DAG_RUN_TESTS in nodeid else super()._split_scope(nodeid)

    return DagRunOnOneWorker(config, log)


@pytest.fixture
def project(tmp_path) -> Path:
    """A fresh copy of the project, to run Snakemake in without touching the checkout."""
    return copy_project(tmp_path / "project")


def carry_compiled_kernels(workdir: Path) -> None:
    """Compile denoise's fused kernels once in this process and put numba's cache of them (keyed by the source's
    mtime and size, which copy_project keeps) into the copy, so that its jobs load them instead of compiling."""
    from gensynth.denoise import scan
    from gensynth.denoise.kernels import warm_up_kernels

    warm_up_kernels("cpu")
    cache = Path(scan.__file__).parent / "__pycache__"
    for compiled in [*cache.glob("scan.*.nbi"), *cache.glob("scan.*.nbc")]:
        target = workdir / compiled.relative_to(ROOT)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(compiled, target)


@pytest.fixture(scope="session")
def dag_run(tmp_path_factory) -> Path:
    """The whole DAG on the test config, run once per session; returns the project copy it ran in.
    pytest-timeout counts test functions only (pyproject.toml): this run has its own limit, DAG_TIMEOUT."""
    workdir = copy_project(tmp_path_factory.mktemp("dag_run"))
    carry_compiled_kernels(workdir)
    snakemake(workdir, "--profile", "profiles/local", "--cores", "2", "--configfile", DAG_CONFIG, timeout=DAG_TIMEOUT)
    return workdir


@pytest.fixture
def one_torch_thread():
    """Small models run faster on one thread than on a shared, busy pair of cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
