"""Capacity plans: the projection's arithmetic, the partition a job lands on, and scripts/plan_capacity.py measuring
real steps and flagging what the declared resources cannot hold."""

from __future__ import annotations

import csv
import math
import subprocess
import sys

import pytest
import yaml

from conftest import ENV, ROOT
from gensynth.capacity import COLUMNS, HEADROOM, STARTUP_S, Declared, Measurement, Partition, Probe, Step, best_partition, plan_row, read_partitions

PARTITIONS = [Partition("cpu", 2880, 256000, 0), Partition("gpu", 2880, 128000, 2), Partition("short_gpu", 60, 512000, 4)]


def probe(iterations=(1000, 200), data_mb=100.0, gpu=True) -> Probe:
    steps = tuple(Step("module:function", {}, n, f"step {i}") for i, n in enumerate(iterations))
    return Probe("rule_x", 4, steps, data_mb, gpu)


def test_a_job_is_its_steps_in_turn_plus_start_up_against_what_it_declares():
    measured = [Measurement(0.5, 900.0, None, "cpu"), Measurement(2.0, 1500.0, None, "cpu")]
    row = plan_row(probe(), measured, Declared(runtime=10, mem_mb=1000), PARTITIONS)
    seconds = 1000 * 0.5 + 200 * 2.0 + STARTUP_S
    assert row["projected_runtime_min"] == math.ceil(seconds / 60) == 16
    assert row["projected_mem_mb"] == math.ceil((1500 + 100) * HEADROOM) == 2000
    assert row["partition"] == "gpu" and row["attempts_needed"] == 2 and row["gpu_hours"] == round(4 * seconds / 3600, 2)
    assert row["problem"] == "needs 2 attempts of 10 min, declares 1; needs 2000 MB, declares 1000"
    assert list(row) == list(COLUMNS) and row["iterations_per_job"] == "1000 + 200"
    held = plan_row(probe(), measured, Declared(runtime=10, mem_mb=2000, attempts=2), PARTITIONS)
    assert held["problem"] == ""


def test_a_runtime_past_the_partitions_limit_and_a_job_no_partition_holds_are_named():
    measured = [Measurement(1.0, 100.0, None, "cpu")] * 2
    too_long = plan_row(probe(), measured, Declared(runtime=5000, mem_mb=4000, attempts=1), PARTITIONS)
    assert too_long["partition"] == "gpu" and "runtime 5000 > partition gpu's max_runtime 2880" in too_long["problem"]
    huge = plan_row(probe(data_mb=600000), measured, Declared(runtime=60, mem_mb=4000), PARTITIONS)
    assert huge["partition"] == "" and huge["problem"].startswith("no partition holds its GPUs and memory")
    assert plan_row(probe(gpu=False), measured, Declared(runtime=60, mem_mb=4000), PARTITIONS)["gpu_hours"] == 0.0


@pytest.mark.parametrize(
    "gpu, mem_mb, expected",
    [(True, 1000, "gpu"), (True, 200000, "short_gpu"), (False, 1000, "cpu"), (False, 300000, "short_gpu"), (True, 10**6, None)],
)
def test_the_partition_is_the_longest_one_that_holds_the_job(gpu, mem_mb, expected):
    chosen = best_partition(PARTITIONS, gpu, mem_mb)
    assert (chosen.name if chosen else None) == expected


def test_the_profiles_partitions_are_read_with_their_limits():
    partitions = {p.name: p for p in read_partitions(ROOT / "profiles/slurm/partitions.yaml")}
    assert partitions["gpu"].max_gpu >= 1 and partitions["cpu"].max_gpu == 0
    assert all(math.isfinite(p.max_runtime) and math.isfinite(p.max_mem_mb) for p in partitions.values())


def test_the_script_measures_each_step_writes_its_table_and_fails_on_what_does_not_fit(tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(
        yaml.safe_dump(
            {"atoms": {"versions": [{"name": "small", "num_images": 20000, "seed": 1}], "resources": {"atoms_dataset": {"mem_mb": 1, "runtime": 1}}}}
        )
    )
    out = tmp_path / "plan.csv"
    command = [sys.executable, str(ROOT / "scripts/plan_capacity.py"), "--configfile", str(config), "--iterations", "2", "--device", "cpu", "--out", str(out)]
    result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr[-2000:]
    with open(out, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["rule"] for row in rows] == ["atoms_dataset (small)"] and list(rows[0]) == list(COLUMNS)
    row = rows[0]
    assert row["jobs"] == "1" and row["iterations_per_job"] == "3" and row["device"] == "cpu" and row["partition"] == "cpu"
    assert float(row["seconds_per_iteration"]) > 0 and float(row["peak_rss_mb"]) > 50, "a real step in its own process"
    assert row["problem"] == f"needs 2 attempts of 1 min, declares 1; needs {row['projected_mem_mb']} MB, declares 1"
    assert "atoms_dataset (small)" in result.stdout and f"wrote {out}" in result.stdout
