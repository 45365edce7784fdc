"""Jobs go through a real SLURM cluster with profiles/slurm: CPU rules to `cpu`, gpu=1 rules to `gpu`, each
with its rule's threads as its CPUs, the replicas as one array job, and a training job that outlives its
walltime finishes over two attempts, as an uninterrupted run would; a run with a job that no partition
holds stops before any sbatch."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from slurm_cluster import Unavailable, slurm_cluster

from conftest import BIN, ENV, copy_project, merged_config, snakemake
from gensynth.io import load_checkpoint
from gensynth.provenance import RULE_ENV
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
    "--seconds-between-status-checks",
    "2",
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


def job_process(workdir: Path, rule: str) -> int | None:
    """The PID of the script that a job of ``rule`` runs in ``workdir``: the process whose environment names the
    rule (common.smk's run_script sets it for the script alone, not for its shell)."""
    for proc in Path("/proc").iterdir():
        try:
            if f"{RULE_ENV}={rule}".encode() in (proc / "environ").read_bytes().split(b"\0") and (proc / "cwd").resolve() == workdir.resolve():
                return int(proc.name)
        except (OSError, ValueError):
            continue  # not a process, or one that ended
    return None


def signal_pending(pid: int, signum: int) -> bool:
    """Whether ``signum`` waits to be delivered to process ``pid`` (a stopped process keeps it pending)."""
    try:
        status = dict(line.split(":\t", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":\t" in line)
    except OSError:
        return False
    return any(int(status.get(field, "0"), 16) >> (signum - 1) & 1 for field in ("ShdPnd", "SigPnd"))


@pytest.mark.slurm
@pytest.mark.timeout(900)  # about 3 minutes of waiting on SLURM (the signal ahead of a 4-minute limit, status checks)
def test_the_module_runs_through_sbatch_and_a_training_past_its_walltime_resumes_to_an_uninterrupted_runs_weights(cluster, project: Path, tmp_path):
    # The replicas module through the cluster with the profile as users run it. Its training asks for 4 minutes
    # and is held (SIGSTOP) from its 10th epoch until the profile's --signal=TERM@120 arrives, 90 to 120 s into
    # the job: a job that outlives its walltime on any machine, for seconds of CPU. The test then lets it go on
    # (SIGCONT); the training saves its state at its next step and exits, and the rule's next attempt resumes it.
    epochs = 300
    walltime = {"replicas": {"train": {"epochs": epochs}, "resources": {"replicas_train": {"mem_mb": 2000, "runtime": 4, "attempts": 2}}}}
    configs = ["--configfile", "config/config.yaml", TOY_CONFIG, "walltime.yaml"]
    reference = copy_project(tmp_path / "reference")
    for workdir in (project, reference):
        (workdir / "walltime.yaml").write_text(yaml.safe_dump(walltime))
    # Their output goes to files: a pipe nobody reads while the test watches the training would fill and stall them.
    reference_err, run_err = tmp_path / "reference.err", tmp_path / "run.err"
    with reference_err.open("w") as err:  # seconds of CPU, at normal priority: at a low one it would wait for the whole suite
        uninterrupted = subprocess.Popen(
            [str(BIN / "snakemake"), TARGET, "--cores", "1", *configs], cwd=reference, env=ENV, stdout=subprocess.DEVNULL, stderr=err
        )
    with run_err.open("w") as err:  # --set-threads: the allocation follows the threads (--cpus-per-task 2)
        run = subprocess.Popen(
            [str(BIN / "snakemake"), *SLURM_FLAGS, "--jobs", "4", "--slurm-keep-successful-logs", "--set-threads", "replicas_phantom=2", *configs],
            cwd=project,
            env=ENV,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    epochs_log = EpochsLog(project / "logs/replicas/replicas_train.epochs.jsonl", "")
    held, released = None, False
    deadline = time.monotonic() + 600
    while run.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):  # the training ended meanwhile
            if held is None and len(epochs_log.records()) >= 10 and (held := job_process(project, "replicas_train")) is not None:
                os.kill(held, signal.SIGSTOP)
            elif held is not None and not released and signal_pending(held, signal.SIGTERM):
                os.kill(held, signal.SIGCONT)
                released = True
        time.sleep(0.05)
    try:
        run.wait(timeout=max(deadline - time.monotonic(), 1))
        uninterrupted.wait(timeout=600)
    except subprocess.TimeoutExpired as late:
        pytest.fail(f"{' '.join(late.cmd[1:3])} did not finish in time:\n{run_err.read_text()[-3000:]}")
    finally:
        for process in (run, uninterrupted):
            if process.poll() is None:
                process.kill()
    stderr = run_err.read_text()
    assert run.returncode == 0, stderr[-4000:]
    assert uninterrupted.returncode == 0, reference_err.read_text()[-3000:]

    # Each job's SLURM log is named after its job id (an array task's: <array job>_<task>); scontrol says where
    # the job ran, what it asked for and how it ended. profiles/default, applied to every run in this folder,
    # must leave the slurm profile's executor and resources alone: the jobs went through sbatch with the
    # rules' own memory and time.
    jobs: dict[str, list[dict[str, str]]] = {}
    for log in sorted((project / ".snakemake/slurm_logs").rglob("*.log"), key=lambda path: path.stat().st_mtime):
        rule = next(part.removeprefix("rule_") for part in log.relative_to(project).parts if part.startswith("rule_"))
        jobs.setdefault(rule, []).append(cluster.job_fields(log.stem))
    assert set(jobs) == CPU_RULES | GPU_RULES, stderr[-3000:]
    config = merged_config(TOY_CONFIG, "walltime.yaml", workdir=project)["replicas"]
    threads = {"replicas_phantom": "2"}
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

    # The training: stopped by SLURM's signal ahead of its time limit, its state saved, then resumed by the rule's
    # next attempt to the end, every epoch once, to the weights and losses of a run that was never stopped.
    assert [f["JobState"] for f in jobs["replicas_train"]] == ["FAILED", "COMPLETED"], stderr[-3000:]
    # the failed attempt's log, as the profile's show-failed-logs prints it
    assert re.search(rf"error: training the replica model: stopped by SIGTERM after epoch \d+ of {epochs}; its state is saved to ", stderr), stderr[-3000:]
    # The job waited for the training's own exit after its save: a shell between the job and the script would die
    # with the signal ("died with <Signals.SIGTERM: 15>") and end the job around a training still saving.
    first = min((project / ".snakemake/slurm_logs/rule_replicas_train").glob("*.log"), key=lambda path: path.stat().st_mtime)
    assert "returned non-zero exit status 2" in first.read_text() and "died with" not in first.read_text()
    assert "resuming after epoch" in (project / "logs/replicas/replicas_train.log").read_text()
    records = epochs_log.records()
    assert [r["epoch"] for r in records] == list(range(1, epochs + 1)) and sorted({r["attempt"] for r in records}) == [1, 2]
    histories = [json.loads((w / "results/replicas/model/history.json").read_text()) for w in (project, reference)]
    assert [e["val_loss"] for e in histories[0]["epochs"]] == [e["val_loss"] for e in histories[1]["epochs"]]
    resumed, straight = (load_checkpoint(w / TARGET) for w in (project, reference))
    for name in ("model", "ema_model"):
        for key, value in straight[name].items():
            assert np.array_equal(value.numpy(), resumed[name][key].numpy()), f"{name}.{key}"


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
