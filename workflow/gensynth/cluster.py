"""A SLURM run's jobs against its partitions, before the first sbatch.

The SLURM executor plugin picks, for each job, the partition of the profile's partition file
(``slurm-partition-config``) whose limits (``max_runtime``, ``max_mem_mb``, ``max_gpu``, ...) hold it; a job no
partition holds goes to the cluster's default partition, where it waits forever or dies at a limit. gensynth
refuses such a run at its start instead, naming each job's rule, what it asks for and where to change it.
The plugin's own fit test decides, so the check and the routing cannot disagree.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import GensynthError


def jobs_no_partition_holds(jobs: Iterable[Any], partition_file: str | Path) -> dict[str, dict[str, Any]]:
    """Per rule, what its first job that fits no partition of ``partition_file`` asks for (runtime, mem_mb, gpu)."""
    from snakemake_executor_plugin_slurm.partitions import read_partition_file

    partitions = read_partition_file(Path(partition_file))
    misfits: dict[str, dict[str, Any]] = {}
    for job in jobs:
        if job.name not in misfits and all(p.score_job_fit(job) is None for p in partitions):
            misfits[job.name] = {key: job.resources.get(key, 0) for key in ("runtime", "mem_mb", "gpu")}
    return misfits


def check_partitions(jobs: Iterable[Any], partition_file: str | Path, module_of: dict[str, str]) -> None:
    """One error listing every rule whose jobs no partition holds (``module_of``: rule -> config section)."""
    misfits = jobs_no_partition_holds(jobs, partition_file)
    if not misfits:
        return
    asks = "; ".join(
        f"{rule} asks for runtime {need['runtime']} min, mem_mb {need['mem_mb']}, gpu {need['gpu']} (config key '{module_of.get(rule, '?')}.resources.{rule}')"
        for rule, need in misfits.items()
    )
    raise GensynthError(
        f"no partition of {partition_file} holds these jobs: {asks}. Lower runtime (minutes per attempt) and raise "
        "attempts (training resumes across attempts), lower mem_mb, or add a partition with higher limits"
    )
