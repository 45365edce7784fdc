"""atoms in the DAG: one atoms_dataset job per configured version, named by the config, not the date."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import config_error, dag_config, snakemake
from gensynth.atoms import load_corpus
from gensynth.io import sha256_file

VERSIONS = dag_config()["atoms"]["versions"]
FILES = ["train.npz", "val.npz", "test.npz", "metadata.json", "validation_report.png"]


def write_config(project: Path, versions: list[dict]) -> str:
    path = project / "atoms_test.yaml"
    path.write_text(yaml.safe_dump({"atoms": {"versions": versions}}))
    return str(path)


@pytest.mark.dag
def test_dag_run_made_each_configured_version(dag_run: Path):
    for version in VERSIONS:
        out = dag_run / "results/atoms" / version["name"]
        assert all((out / name).is_file() for name in FILES)
        metadata = json.loads((out / "metadata.json").read_text())
        n = version["num_images"]
        assert metadata["generation_params"]["num_images"] == n and metadata["generation_params"]["seed"] == version["seed"]
        assert metadata["dataset_info"]["total_count"] == n
        for name in FILES[:3]:
            assert metadata["files"][name]["sha256"] == sha256_file(out / name)
        corpus = load_corpus(out)
        assert sum(len(labels) for _, labels in corpus.values()) == n
        labels = np.concatenate([labels for _, labels in corpus.values()])
        assert labels.min() >= 1 and labels.max() <= 118


def test_a_configured_version_builds_through_the_cli_with_yes(project: Path):
    config = write_config(project, [{"name": "lab-run.7", "num_images": 300, "seed": 3, "grid_size": 8}])
    dry = snakemake(project, "-n", "-p", "--configfile", config, "--cores", "2", "results/atoms/lab-run.7/metadata.json").stdout
    assert (
        "python scripts/generate_dataset.py --yes --num-images 300 --seed 3 --grid-size 8 --train-fraction 0.8 "
        "--val-fraction 0.1 --test-fraction 0.1 --generator gensynth.atoms:generate_batch "
        "--output-dir results/atoms/lab-run.7 --threads 2 > logs/atoms/atoms_dataset/lab-run.7.log 2>&1"
    ) in dry
    snakemake(project, "--configfile", config, "--cores", "2", "results/atoms/lab-run.7/validation_report.png")
    out = project / "results/atoms/lab-run.7"
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert load_corpus(out)["train"][0].shape == (240, 8, 8)
    assert (project / "benchmarks/atoms/atoms_dataset/lab-run.7.tsv").is_file()
    assert "Generated and saved 300 images" in (project / "logs/atoms/atoms_dataset/lab-run.7.log").read_text()


def test_an_unconfigured_version_is_no_target(project: Path):
    result = snakemake(project, "-n", "results/atoms/2099-01-01-v1/train.npz", check=False)
    assert result.returncode != 0
    assert "MissingRuleException" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "versions,message",
    [
        (
            [{"name": "a", "num_images": 5}, {"name": "a", "num_images": 6}],
            "invalid config: config key 'atoms.versions[1].name' = a: expected a name no other version has",
        ),
        (
            [{"name": "a", "num_images": 5, "splits": {"train": 0.5}}],
            "invalid config: config key 'atoms.versions[0].splits' = {train: 0.5, val: 0.1, test: 0.1}: expected fractions summing to 1, not 0.7",
        ),
        ([{"name": "a", "num_images": 0}], "invalid config: config key 'atoms.versions[0].num_images' = 0: expected a number >= 1"),
    ],
)
def test_bad_versions_stop_before_any_job(versions, message):
    assert message in "invalid config: " + config_error(yaml.safe_dump({"atoms": {"versions": versions}}))
