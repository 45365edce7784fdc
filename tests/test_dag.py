"""The default DAG audits cleanly: every job shows its full command; lint finds nothing; the test config's DAG runs
every rule the default one does."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
import yaml

from conftest import DAG_CONFIG, ROOT, copy_project, job_counts, snakemake
from gensynth.config import validate_config

# Rules each module must contribute to the default DAG.
EXPECTED_RULES = {
    "atoms": {"atoms_dataset"},
    "replicas": {"replicas_phantom", "replicas_train", "replicas_generate", "replicas_qa"},
    "madness": {
        "madness_prepare_data",
        "madness_train_lenet",
        "madness_train_initial",
        "madness_generation",
        "madness_metrics",
        "madness_jacobian",
        "madness_detect",
    },
    "denoise": {"denoise_phantom", "denoise_tune_baselines", "denoise_train", "denoise_shard", "denoise_merge", "denoise_panel_qa", "denoise_plot_roi"},
    "genaug": {"genaug_data", "genaug_train_pipeline", "genaug_classify", "genaug_quality", "genaug_report"},
}


@pytest.fixture(scope="module")
def default_dry_run(tmp_path_factory) -> str:
    """`snakemake -n -p` of the default config, in a copy of the project."""
    return snakemake(copy_project(tmp_path_factory.mktemp("default_dry_run")), "-n", "-p", "--cores", "2").stdout


def test_dry_run_lists_every_job_with_its_command(default_dry_run: str):
    output = default_dry_run
    counts = job_counts(output)
    for module, rules in EXPECTED_RULES.items():
        assert rules <= set(counts), f"{module}: rules {sorted(rules - set(counts))} missing from the dry-run"
    # GENSYNTH_RULE=<rule> GENSYNTH_WILDCARDS=<...> GENSYNTH_LOG=<log> exec <Snakemake's own python> scripts/<x>.py ... > <log> 2>&1  # code <digest>
    shape = re.compile(
        rf"^Shell command: GENSYNTH_RULE=(\w+) GENSYNTH_WILDCARDS=\S* GENSYNTH_LOG=(\S+) exec {re.escape(sys.executable)} (scripts/\w+\.py) "
        r".* > (\S+) 2>&1  # code [0-9a-f]{16}$"
    )
    commands = [shape.match(line) for line in output.splitlines() if line.startswith("Shell command: ") and line != "Shell command: None"]
    assert all(commands) and len(commands) == counts["total"] - counts["all"], "every job but `all` must print its full command"
    for command in commands:
        assert (ROOT / command.group(3)).is_file(), f"{command.group(3)} does not exist"
        assert command.group(1) in counts and command.group(2) == command.group(4), "the job's own log"


def test_the_test_config_runs_every_rule_of_the_default_dag(default_dry_run: str, project: Path):
    default = job_counts(default_dry_run)
    test = job_counts(snakemake(project, "-n", "--cores", "2", "--configfile", DAG_CONFIG).stdout)
    assert set(default) == set(test), f"rules only in the default DAG: {sorted(set(default) - set(test))}"
    assert test["total"] < default["total"]


def test_lint_is_clean():
    result = snakemake(ROOT, "--lint", check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Congratulations" in result.stdout + result.stderr


@pytest.mark.dag
def test_dag_no_training_leaves_resume_state_behind(dag_run: Path):
    """Every training job removes its resume state once its artifact is written: a rerun (its code changed)
    trains afresh instead of finishing from the replaced run's state."""
    left = [p for p in (dag_run / "results").rglob("*") if p.is_file() and ("resume" in p.name or p.parent.name == "resume")]
    assert [str(p.relative_to(dag_run)) for p in left] == []


def test_dag_a_second_run_has_nothing_to_do(dag_run: Path):
    """Another day, the same config: every module's artifacts are up to date, none is rebuilt."""
    assert "Nothing to be done" in snakemake(dag_run, "-n", "--configfile", DAG_CONFIG).stdout


def test_the_capacity_plan_counts_the_jobs_the_dag_makes(default_dry_run: str):
    """scripts/plan_capacity.py projects each expensive rule's jobs: as many as the default DAG has of it."""
    from gensynth.modules import MODULES, module_capacity

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config)
    counts = job_counts(default_dry_run)
    planned: dict[str, int] = {}
    for module in MODULES:
        for probe in module_capacity(module).probes(config[module]):
            planned[probe.rule] = planned.get(probe.rule, 0) + probe.jobs
            assert probe.steps and all(step.iterations >= 1 for step in probe.steps), probe.name
    assert planned == {rule: counts[rule] for rule in planned}
    assert {"replicas_train", "madness_generation", "denoise_train", "genaug_classify", "atoms_dataset"} <= set(planned)
