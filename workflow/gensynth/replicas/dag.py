"""What the DAG knows of replicas: data (the phantom's or the user's), model, one replica per job, QA.

Plain Python (the Snakefile reads it at parse time); the user's NPZ is opened only to read an array's shape.
"""

from __future__ import annotations

from typing import Any

from ..dagtools import config_error, one_of, require_file, uses_phantom
from ..diffusion.shape import check_unet_shape
from ..io import npz_member_shape

ROOT = "results/replicas"
PHANTOM_DATA = {
    "train": f"{ROOT}/data/train.npz",
    "test": f"{ROOT}/data/test.npz",
    "csv": f"{ROOT}/data/test_distribution.csv",
}
MODEL = {
    "ckpt": f"{ROOT}/model/best.ckpt",
    "config": f"{ROOT}/model/config.yaml",
    "history": f"{ROOT}/model/history.json",
}
REPLICA = {"npz": f"{ROOT}/replica_{{replica_id}}.npz", "meta": f"{ROOT}/replica_{{replica_id}}_meta.json"}
QA = {
    "json": f"{ROOT}/qa/qa.json",
    "table": f"{ROOT}/qa/replicas.tsv",
    "summary": f"{ROOT}/qa/summary.png",
    "samples": f"{ROOT}/qa/samples.png",
}


def data_paths(section: dict[str, Any]) -> dict[str, str]:
    """Training slices, real test slices and test CSV: the phantom's, or the user's files."""
    if uses_phantom(section):
        return dict(PHANTOM_DATA)
    data = section["data"]
    return {"train": data["train_npz"], "test": data["test_npz"], "csv": data["test_csv"] or PHANTOM_DATA["csv"]}


def counts_test_csv(section: dict[str, Any]) -> bool:
    """files without a test CSV: the DAG counts it from the test slices."""
    return not uses_phantom(section) and not section["data"]["test_csv"]


def replica_ids(section: dict[str, Any]) -> list[str]:
    return [f"{i:03d}" for i in range(section["sample"]["n_replicas"])]


def replica_id_pattern(section: dict[str, Any]) -> str:
    return one_of(replica_ids(section))


def replicas(section: dict[str, Any]) -> list[str]:
    return [REPLICA["npz"].format(replica_id=i) for i in replica_ids(section)]


def final_outputs(section: dict[str, Any]) -> list[str]:
    return list(QA.values())


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    """The user's files exist, the model's channels and levels fit the slices, the phantom has both splits."""
    if uses_phantom(section):
        size_key, size = "replicas.phantom.image_size", section["phantom"]["image_size"]
        check_phantom_splits(section["phantom"])
    else:
        data = section["data"]
        for key in ("train_npz", "test_npz"):
            if not data[key]:
                raise config_error(f"replicas.data.{key}", data[key], "a path when replicas.data.source is files")
            require_file(f"replicas.data.{key}", data[key])
        if data["test_csv"]:
            require_file("replicas.data.test_csv", data["test_csv"])
        size_key, size = "replicas.data.train_npz", npz_member_shape(data["train_npz"], "images")[-1]
    check_unet_shape(section["model"]["block_out_channels"], size, channels_key="replicas.model.block_out_channels", size_key=size_key)


def check_phantom_splits(phantom: dict[str, Any]) -> None:
    """Each domain holds out round(n * test_fraction) subjects (at least one when it has two or more)."""
    n_train = n_test = 0
    for domain in ("control", "epilepsy"):
        n = phantom[f"subjects_{domain}"]
        held_out = max(1, round(n * phantom["test_fraction"])) if n > 1 else 0
        n_train, n_test = n_train + n - held_out, n_test + held_out
    if not n_train or not n_test:
        split = "train" if not n_train else "test"
        raise config_error(
            "replicas.phantom.test_fraction", phantom["test_fraction"], f"a share that leaves subjects in both splits (the {split} split would be empty)"
        )
