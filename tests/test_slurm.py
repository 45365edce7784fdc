"""Jobs go through a real SLURM cluster with profiles/slurm: CPU rules to `cpu`, gpu=1 rules to `gpu`, each
with its rule's threads as its CPUs; a run with a job that no partition holds stops before any sbatch; a
training job longer than its walltime finishes over several attempts, as an uninterrupted run would."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from slurm_cluster import Unavailable, slurm_cluster

from conftest import BIN, ENV, copy_project, snakemake
from gensynth.config import validate_config
from gensynth.io import load_checkpoint
from gensynth.training import EpochsLog

# A small real DAG at toy scale: the replicas module's CPU and GPU rules, its replicas as one array job.
TARGET = "results/replicas/model/best.ckpt"
CPU_RULES = {"replicas_phantom", "replicas_qa"}  # replicas_test_distribution runs where Snakemake does (a local rule)
GPU_RULES = {"replicas_train", "replicas_generate"}
TOY_CONFIG = "tests/configs/slurm_toy.yaml"
SLURM_FLAGS = (
    "--profile",
    "profiles/slurm",
    "--slurm-init-seconds-before-status-checks",
    "2",
    "--slurm-status-command",
    "squeue",  # the test cluster has no accounting for sacct
)


OPT_IN = "GENSYNTH_SLURM_TEST"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    # It installs Debian packages and writes /etc/slurm when run as root: only where asked for.
    if os.environ.get("CI") != "true" and os.environ.get(OPT_IN) != "1":
        pytest.skip(f"the SLURM test cluster installs packages and writes /etc/slurm: set {OPT_IN}=1 (CI sets CI=true) to run it")
    try:
        with slurm_cluster(tmp_path_factory.mktemp("slurm")) as running:
            yield running
    except Unavailable as reason:
        pytest.skip(f"no SLURM test cluster here: {reason}")


@pytest.mark.slurm
def test_jobs_run_through_sbatch_on_the_right_partitions(cluster, project: Path):
    result = snakemake(
        project,
        *SLURM_FLAGS,
        "--jobs",
        "4",
        "--slurm-keep-successful-logs",
        "--set-threads",
        "replicas_train=2",  # the allocation follows the threads: --cpus-per-task 2
        "--configfile",
        "config/config.yaml",
        TOY_CONFIG,
        timeout=900,
    )
    assert (project / TARGET).is_file()
    # Each job's SLURM log is named after its job id (an array task's: <array job>_<task>); scontrol says where
    # the job ran and what it asked for. profiles/default, applied to every run in this folder, must leave the
    # slurm profile's executor and resources alone: the jobs went through sbatch with the rules' own memory and time.
    jobs: dict[str, list[dict[str, str]]] = {}
    for log in sorted((project / ".snakemake/slurm_logs").rglob("*.log")):
        rule = next(part.removeprefix("rule_") for part in log.relative_to(project).parts if part.startswith("rule_"))
        jobs.setdefault(rule, []).append(cluster.job_fields(log.stem))
    assert set(jobs) == CPU_RULES | GPU_RULES, result.stderr[-3000:]
    config = validate_config(yaml.safe_load((project / "config/config.yaml").read_text()))["replicas"]  # with the schema's defaults
    threads = {"replicas_train": "2"}
    for rule, fields in jobs.items():
        partition = "gpu" if rule in GPU_RULES else "cpu"
        assert all(f["Partition"] == partition and f["CPUs/Task"] == threads.get(rule, "1") for f in fields), rule
        runtime = config["resources"][rule]["runtime"]
        mem_mb = config["resources"][rule]["mem_mb"]  # an array task's asks for a few MB more: the plugin's encoded payload
        assert all(mem_mb <= int(f["MinMemoryNode"].removesuffix("M")) <= mem_mb + 16 for f in fields), (rule, [f["MinMemoryNode"] for f in fields])
        assert all(f["TimeLimit"] == f"{runtime // 60:02d}:{runtime % 60:02d}:00" for f in fields), rule
    # the profile's array jobs: the replicas, one task each, in one sbatch
    generate = jobs["replicas_generate"]
    assert len(generate) == config["sample"]["n_replicas"] and len({f["ArrayJobId"] for f in generate}) == 1
    for replica in range(config["sample"]["n_replicas"]):
        meta = json.loads((project / f"results/replicas/replica_{replica:03d}_meta.json").read_text())
        assert meta["replica_id"] == replica
    for log in [project / "logs/replicas/replicas_train.log", *(project / "logs/replicas/replicas_generate").glob("*.log")]:
        assert re.search(r"CUDA_VISIBLE_DEVICES=[01]\)", log.read_text()), log  # one of the node's two GPUs each


@pytest.mark.slurm
def test_a_job_no_partition_holds_stops_the_run_before_any_sbatch(cluster, project: Path):
    result = snakemake(
        project,
        TARGET,
        *SLURM_FLAGS,
        "--set-resources",
        "replicas_train:runtime=5000",  # more than any partition's max_runtime (2880 minutes)
        "--configfile",
        "config/config.yaml",
        TOY_CONFIG,
        check=False,
        timeout=300,
    )
    assert result.returncode != 0
    assert "no partition of " in result.stderr and "replicas_train asks for runtime 5000 min, mem_mb " in result.stderr
    assert "config key 'replicas.resources.replicas_train'" in result.stderr and "replicas_phantom asks" not in result.stderr
    assert not (project / ".snakemake/slurm_logs").exists(), "nothing was submitted"


@pytest.mark.slurm
@pytest.mark.timeout(1800)  # 3 minutes and 2 attempts on a quiet machine; beside the DAG run's jobs, 5 to 10 attempts
def test_a_training_longer_than_its_walltime_finishes_over_attempts_identical_to_an_uninterrupted_run(cluster, project, tmp_path):
    # About 100 s of training under a 1-minute limit, which SLURM enforces 60 to 90 s into the job: its SIGTERM
    # at the limit (no early --signal, which SLURM times only to the minute) stops it, the rule's attempts resume it.
    longer = {"replicas": {"train": {"epochs": 3000}, "resources": {"replicas_train": {"mem_mb": 2000, "runtime": 1, "attempts": 12}}}}
    configs = ["--configfile", "config/config.yaml", TOY_CONFIG, "longer.yaml"]
    reference = copy_project(tmp_path / "reference")
    for workdir in (project, reference):
        (workdir / "longer.yaml").write_text(yaml.safe_dump(longer))
    uninterrupted = subprocess.Popen(  # at low priority: the suite's other jobs come first
        ["nice", "-n", "19", str(BIN / "snakemake"), TARGET, "--cores", "1", *configs],
        cwd=reference,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    result = snakemake(project, TARGET, *SLURM_FLAGS, "--set-resources", "replicas_train:slurm_extra=''", *configs, timeout=900)
    _, stderr = uninterrupted.communicate(timeout=600)
    assert uninterrupted.returncode == 0, stderr[-3000:]
    records = EpochsLog(project / "logs/replicas/replicas_train.epochs.jsonl", "").records()
    attempts = sorted({r["attempt"] for r in records})
    assert len(attempts) >= 2 and [r["epoch"] for r in records] == list(range(1, 3001)), result.stderr[-3000:]
    histories = [json.loads((w / "results/replicas/model/history.json").read_text()) for w in (project, reference)]
    assert [e["val_loss"] for e in histories[0]["epochs"]] == [e["val_loss"] for e in histories[1]["epochs"]]
    resumed, straight = (load_checkpoint(w / TARGET) for w in (project, reference))
    for name in ("model", "ema_model"):
        for key, value in straight[name].items():
            assert np.array_equal(value.numpy(), resumed[name][key].numpy()), f"{name}.{key}"
