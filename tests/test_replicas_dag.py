"""replicas in the DAG: the DAG run's files (tests/configs/dag.yaml) against the published tables, its QA, and dry-runs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import config_error, dag_config, default_config, snakemake
from gensynth.io import load_npz, save_npz
from gensynth.replicas.dag import replica_id_pattern
from gensynth.replicas.data import load_test_distribution
from gensynth.replicas.generate import META_CONFIG_KEYS, META_KEYS, META_SAMPLER_KEYS, sample_seed

CONFIG = dag_config()["replicas"]
N_REPLICAS = CONFIG["sample"]["n_replicas"]
Z_BINS = CONFIG["z_bins"]
SIZE = CONFIG["phantom"]["image_size"]
# The published NPZ table: name -> (dtype, shape with N = total n_slices and H = the image size)
PUBLISHED_TABLE = {
    "images": ("float16", ("N", SIZE, SIZE)),
    "masks": ("float16", ("N", SIZE, SIZE)),
    "zbin": ("int32", ("N",)),
    "lesion_present": ("uint8", ("N",)),
    "domain": ("uint8", ("N",)),
    "condition_token": ("int32", ("N",)),
    "seed": ("int64", ("N",)),
    "k_index": ("int32", ("N",)),
    "replica_id": ("int32", ("N",)),
}


@pytest.fixture(scope="module")
def results(dag_run) -> Path:
    return dag_run / "results" / "replicas"


@pytest.mark.dag
@pytest.mark.parametrize("replica_id", range(N_REPLICAS))
def test_dag_replica_matches_the_published_tables(results, replica_id):
    distribution = load_test_distribution(results / "data" / "test_distribution.csv", Z_BINS)
    n = int(distribution["n_slices"].sum())
    arrays = load_npz(results / f"replica_{replica_id:03d}.npz")
    assert list(arrays) == list(PUBLISHED_TABLE)
    for name, (dtype, shape) in PUBLISHED_TABLE.items():
        assert arrays[name].dtype == np.dtype(dtype), name
        assert arrays[name].shape == tuple(n if d == "N" else d for d in shape), name
    assert (arrays["replica_id"] == replica_id).all()
    np.testing.assert_array_equal(arrays["condition_token"], arrays["zbin"] + arrays["lesion_present"].astype(np.int32) * Z_BINS)
    conditions = zip(arrays["zbin"], arrays["lesion_present"], arrays["domain"], arrays["k_index"])
    seeds = [sample_seed(CONFIG["sample"]["seed_base"], replica_id, int(z), int(lesion), int(d), int(k)) for z, lesion, d, k in conditions]
    assert arrays["seed"].tolist() == seeds
    assert np.abs(arrays["images"].astype(np.float32)).max() <= 1 and np.abs(arrays["masks"].astype(np.float32)).max() <= 1

    meta = json.loads((results / f"replica_{replica_id:03d}_meta.json").read_text())
    assert list(meta) == [*META_KEYS, "provenance"]
    assert list(meta["config"]) == META_CONFIG_KEYS and list(meta["sampler"]) == META_SAMPLER_KEYS
    assert meta["replica_id"] == replica_id and meta["seed_base"] == CONFIG["sample"]["seed_base"] and meta["n_samples"] == n
    assert meta["n_conditions"] == len(distribution)
    assert meta["config"]["z_bins"] == Z_BINS and meta["config"]["output_dtype"] == "float16" and meta["config"]["ema_loaded"]
    sampling = CONFIG["sample"]
    assert meta["sampler"] == {"type": "DDIM", "num_inference_steps": sampling["num_inference_steps"], "eta": 0.0, "guidance_scale": sampling["guidance_scale"]}
    assert meta["domain_mapping"] == {"control": 0, "epilepsy": 1} and meta["domain_mapping_inverse"] == {"0": "control", "1": "epilepsy"}
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}", meta["generation_timestamp"])
    assert set(meta["provenance"]["inputs"]) == {"checkpoint", "config", "test_csv"}


@pytest.mark.dag
def test_dag_qa_counts_are_exact_and_real_lesions_agree(results):
    qa = json.loads((results / "qa" / "qa.json").read_text())
    distribution = load_test_distribution(results / "data" / "test_distribution.csv", Z_BINS)
    assert qa["summary"]["n_replicas"] == N_REPLICAS
    for replica in qa["replicas"]:
        assert replica["counts_exact"] and replica["count_mismatches"] == [] and replica["layout_ok"]
        assert replica["n_samples"] == distribution["n_slices"].sum()
        assert [row["n_samples"] for row in replica["per_zbin"]] == [int(distribution.loc[distribution["zbin"] == z, "n_slices"].sum()) for z in range(Z_BINS)]
    # the same rule on the real masks must find exactly the real lesions
    assert qa["real"]["lesion_agreement"] == 1.0
    table = pd.read_csv(results / "qa" / "replicas.tsv", sep="\t")
    assert table["replica_id"].tolist() == list(range(N_REPLICAS)) and table["counts_exact"].all()
    for figure in ("summary.png", "samples.png"):
        assert (results / "qa" / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def job_stats(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:") :]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}


def test_dry_run_of_ten_replicas_lists_one_gpu_job_each(project):
    (project / "ten.yaml").write_text("replicas:\n  sample:\n    n_replicas: 10\n")
    output = snakemake(project, "-n", "-p", "--configfile", "ten.yaml", "--cores", "2", "results/replicas/qa/qa.json").stdout
    assert job_stats(output)["replicas_generate"] == 10
    jobs = [block for block in output.split("\n\n") if "rule replicas_generate:" in block]
    assert sorted(re.search(r"wildcards: replica_id=(\d+)", job).group(1) for job in jobs) == [f"{i:03d}" for i in range(10)]
    for job in jobs:
        assert re.search(r"resources: .*\bgpu=1\b", job), job
        assert "python scripts/generate_replicas.py" in job and "--replica-id" in job
    # one replica as a target: exactly one replica job (and what it needs)
    one = snakemake(project, "-n", "--configfile", "ten.yaml", "--cores", "2", "results/replicas/replica_003.npz").stdout
    assert job_stats(one)["replicas_generate"] == 1 and "replica_id=003" in one
    # ids come from the config: a typo'd or out-of-range target fails at parse time
    ids = replica_id_pattern({**default_config()["replicas"], "sample": {"n_replicas": 10}})
    assert re.fullmatch(ids, "009") and not re.fullmatch(ids, "3") and not re.fullmatch(ids, "010")
    result = snakemake(project, "-n", "--configfile", "ten.yaml", "--cores", "1", "results/replicas/replica_010.npz", check=False)
    assert result.returncode != 0 and "MissingRuleException" in result.stdout + result.stderr


def test_bad_replicas_config_is_one_line():
    assert "config key 'replicas.sample.n_replicas' = 0: expected a number >= 1" in config_error("replicas:\n  sample:\n    n_replicas: 0\n")
    assert "config key 'replicas.data.train_npz' = '': expected a path when replicas.data.source is files" in config_error(
        "replicas:\n  data:\n    source: files\n"
    )


def test_users_files_replace_the_phantom(project):
    (project / "mine").mkdir()
    for split in ("train", "test"):  # the DAG reads only the slices' size
        save_npz(project / "mine" / f"{split}.npz", {"images": np.zeros((2, 16, 16), np.float16)})
    (project / "files.yaml").write_text("replicas:\n  data:\n    source: files\n    train_npz: mine/train.npz\n    test_npz: mine/test.npz\n")
    output = snakemake(project, "-n", "-p", "--configfile", "files.yaml", "--cores", "2", "results/replicas/qa/qa.json").stdout
    stats = job_stats(output)
    assert "replicas_phantom" not in stats and stats["replicas_test_distribution"] == 1
    assert "--data mine/train.npz" in output and "distribution --test mine/test.npz" in output
    assert "--real mine/test.npz" in output
    save_npz(project / "mine" / "train.npz", {"images": np.zeros((2, 18, 18), np.float16)})
    result = snakemake(project, "-n", "--configfile", "files.yaml", check=False)
    assert "config key 'replicas.data.train_npz' = 18: expected a multiple of 4 (the UNet halves it 2 times" in result.stdout + result.stderr
