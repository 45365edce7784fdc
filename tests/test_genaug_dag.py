"""genaug in the DAG: dry-runs of the default and full configs (arms as wildcards), config checks, script defaults,
the DAG run's arms (its table recomputed from their predictions), and the jobs that read a user's model folders."""

from __future__ import annotations

import copy
import csv
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, copy_project, dag_config, snakemake
from gensynth.config import validate_config
from gensynth.errors import GensynthError
from gensynth.genaug import dag
from gensynth.genaug.augmentation import MODALITIES
from gensynth.genaug.data import load_dataset
from gensynth.genaug.experiment import pool_predictions, summarize
from gensynth.genaug.flags import KEYS, default, flag_name
from gensynth.genaug.tiny_sd import build_ddim_pipeline
from gensynth.io import load_npz
from gensynth.training import EpochsLog

CONFIG = yaml.safe_load((ROOT / "config" / "config.yaml").read_text())
USER_MODELS = "tests/configs/genaug_user_models.yaml"


def job_stats(output: str) -> dict[str, int]:
    table = output[output.index("Job stats:") :]
    return {rule: int(count) for rule, count in re.findall(r"^(\w+)\s+(\d+)\s*$", table, flags=re.M)}


def jobs_of(output: str, rule: str) -> list[str]:
    return [block for block in output.split("\n\n") if f"rule {rule}:" in block]


def section(**changes) -> dict:
    """The default genaug section, validated (defaults filled), with dotted keys changed."""
    config = copy.deepcopy(CONFIG)
    for key, value in changes.items():
        node = config["genaug"]
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return validate_config(config)["genaug"]


DEFAULT_ARMS = ["baseline", "augmented", "dose15_replace", "dose50_replace", "wrongphase50_replace", "real50_replace"]


def test_the_default_dry_run_trains_the_rgb_pipelines_per_fold_and_every_arm(project):
    output = snakemake(project, "-n", "-p", "--cores", "2", "--config", "modules=[genaug]").stdout
    stats = job_stats(output)
    rules = ("genaug_data", "genaug_train_pipeline", "genaug_pool", "genaug_classify", "genaug_quality", "genaug_report")
    assert {rule: stats[rule] for rule in rules} == {
        "genaug_data": 1,
        "genaug_train_pipeline": 9,
        "genaug_pool": 3,
        "genaug_classify": 6 * 3,
        "genaug_quality": 3,
        "genaug_report": 1,
    }
    pipelines = sorted(re.search(r"wildcards: fold=(\d), folder=(\w+)", job).groups() for job in jobs_of(output, "genaug_train_pipeline"))
    assert pipelines == [(str(f), folder) for f in range(3) for folder in ("rgb_I", "rgb_P", "rgb_R")]
    for rule in ("genaug_train_pipeline", "genaug_pool", "genaug_classify", "genaug_quality"):
        assert all(re.search(r"resources: .*\bgpu=1\b", job) for job in jobs_of(output, rule)), rule
    (pool,) = [job for job in jobs_of(output, "genaug_pool") if "fold=1" in job]
    assert "--models results/genaug/models/fold1 --inference-steps 10 --folders rgb_I rgb_P rgb_R --n-images 128" in pool
    arms = set()
    for job in jobs_of(output, "genaug_classify"):
        arm, fold = re.search(r"wildcards: arm=(\w+), fold=(\d)", job).groups()
        arms.add(arm)
        assert "--models " not in job  # trained pipelines are read through their pools
        if arm == "baseline":
            assert "--no-use-generative-augmentation" in job and "--pools " not in job and "--depth-rgb-prob" not in job
            continue
        assert "--use-generative-augmentation" in job and "--no-thermal-rgb-enabled" in job and "--thermal-rgb-prob" not in job
        source, mode = {"augmented": ("generated", "replace"), "wrongphase50_replace": ("wrong_phase", "replace"), "real50_replace": ("real", "replace")}.get(
            arm, ("generated", "replace")
        )
        assert f"--augment-source {source} --augment-mode {mode}" in job
        assert ("--pools " in job) == (source != "real") and (source == "real" or f"--pools results/genaug/pools/fold{fold}/steps10.npz" in job)
        settings = "--depth-rgb-prob 0.5 --depth-rgb-mix-ratio-range 0.01 0.05" if arm == "augmented" else "--depth-rgb-prob 1.0 --depth-rgb-mix-ratio-range"
        assert settings in job
    assert arms == set(DEFAULT_ARMS)
    assert "--depth-rgb-mix-ratio-range 0.15 0.15" in next(job for job in jobs_of(output, "genaug_classify") if "arm=dose15_replace" in job)


def test_full_config_sweeps_are_arms_and_all_nine_folders_train(project):
    output = snakemake(project, "-n", "--configfile", "config/full/genaug.yaml", "--cores", "2", "--config", "modules=[genaug]").stdout
    stats = job_stats(output)
    arms = [
        *DEFAULT_ARMS,
        "augmented_prob0.3",
        "augmented_prob0.7",
        "augmented_mix0.05-0.15",
        "augmented_mix0.15-0.3",
        "augmented_steps20",
        "augmented_steps50",
    ]
    assert stats["genaug_train_pipeline"] == 9 * 5 and stats["genaug_classify"] == len(arms) * 5 and stats["genaug_quality"] == 5
    assert stats["genaug_pool"] == 3 * 5  # 10, 20 and 50 steps per fold
    found = {re.search(r"wildcards: arm=([\w.-]+), fold=0", job) for job in jobs_of(output, "genaug_classify")}
    assert sorted(m.group(1) for m in found if m) == sorted(arms)
    (quality,) = [job for job in jobs_of(output, "genaug_quality") if "fold=0" in job]
    assert "--inference-steps 10 20 50" in quality and "--folders rgb_I rgb_P rgb_R thermal_map_I" in quality
    prob = [job for job in jobs_of(output, "genaug_classify") if "arm=augmented_prob0.3, fold=0" in job][0]
    assert "--depth-rgb-prob 0.3 --depth-rgb-mix-ratio-range 0.01 0.05 --depth-rgb-inference-steps 10" in prob
    # one arm as a target: only its jobs and what they need; an arm not in the config is no target
    one = snakemake(project, "-n", "--configfile", "config/full/genaug.yaml", "--cores", "2", "results/genaug/runs/augmented_steps50/fold3.npz").stdout
    assert job_stats(one)["genaug_classify"] == 1 and job_stats(one)["genaug_train_pipeline"] == 3 and job_stats(one)["genaug_pool"] == 1
    assert "--pools results/genaug/pools/fold3/steps50.npz" in one
    result = snakemake(project, "-n", "--cores", "1", "results/genaug/runs/augmented_prob0.9/fold0.npz", check=False)
    assert result.returncode != 0 and "MissingRuleException" in result.stdout + result.stderr


BAD_SECTIONS = [
    (
        {"use_generative_augmentation": True, "modalities.depth_rgb.enabled": False},
        "config key 'genaug.use_generative_augmentation' = true: expected at least one modality with enabled: true",
    ),
    ({"use_generative_augmentation": False, "sweep.prob": [0.3]}, "config key 'genaug.sweep'"),
    ({"sweep.mix_ratio_range": [[0.2, 0.1]]}, "config key 'genaug.sweep.mix_ratio_range' = [0.2, 0.1]: expected low <= high"),
    ({"modalities.depth_rgb.mix_ratio_range": [0.05, 0.01]}, "genaug.modalities.depth_rgb.mix_ratio_range' = [0.05, 0.01]: expected low <= high"),
    ({"pipeline.block_out_channels": [12, 24]}, "genaug.pipeline.block_out_channels' = [12, 24]: expected multiples of 8"),
    ({"data.image_size": 10, "pipeline.block_out_channels": [8, 16, 16]}, "'genaug.data.image_size' = 10: expected a multiple of 4 (the UNet halves"),
    ({"classifier.width": 5}, "'genaug.classifier.width' = 5: expected an even number"),
    ({"phantom.patients": 2}, "'genaug.phantom.patients' = 2: expected at least data.folds = 3"),
    ({"phantom.patients": 6, "data.val_fraction": 0.9}, "'genaug.data.val_fraction' = 0.9: expected a share that leaves training patients"),
    ({"data.source": "folder"}, "'genaug.data.folder' = '': expected an existing data folder"),
    ({"data.source": "folder", "data.folder": "resources"}, "'genaug.data.csv' = resources/labels.csv: expected an existing file"),
    ({"models.source": "folder", "models.folder": "resources"}, "'genaug.models.folder' = resources: expected a folder holding rgb_I/model_index.json"),
    ({"prompts": "missing.yaml"}, "missing.yaml: prompt templates file not found"),
    ({"sweep.prob": [0.3, 0.3000001]}, "expected values that name distinct arms"),
    ({"dose.modes": []}, "'genaug.dose.modes' = []: expected at least one of replace, add when dose.shares are given"),
    ({"dose.shares": [0.15, 0.1500000001]}, "'genaug.dose.shares' = [0.15, 0.1500000001]: expected shares that name distinct arms"),
]


@pytest.mark.parametrize("changes,message", BAD_SECTIONS, ids=[next(iter(c)) for c, _ in BAD_SECTIONS])
def test_a_bad_section_is_one_line_naming_the_key(changes, message, monkeypatch):
    monkeypatch.chdir(ROOT)  # relative paths (prompts, folders) as the Snakefile sees them
    with pytest.raises(GensynthError) as error:
        dag.validate(section(**changes), CONFIG)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_the_default_section_validates_and_names_its_arms(monkeypatch):
    monkeypatch.chdir(ROOT)
    dag.validate(section(), CONFIG)
    assert dag.arms(section()) == DEFAULT_ARMS
    off = section(use_generative_augmentation=False)
    dag.validate(off, CONFIG)  # the dose axis needs no emptying: with the switch off there is only the baseline
    assert dag.arms(off) == ["baseline"] and dag.model_folders(off) == [] and dag.pool_steps(off) == []
    swept = section(**{"sweep.prob": [0.3, 0.5], "sweep.inference_steps": [10, 20], "dose.shares": [], "dose.controls": []})
    assert dag.arms(swept) == ["baseline", "augmented", "augmented_prob0.3", "augmented_steps20"]  # 0.5 and 10 are the base
    assert dag.quality_steps(swept) == [10, 20] and dag.pool_steps(swept) == [10, 20]
    added = section(**{"dose.shares": [0.05], "dose.modes": ["replace", "add"], "dose.controls": ["real"], "dose.controls_mode": "add"})
    assert dag.arms(added) == ["baseline", "augmented", "dose5_replace", "dose5_add", "real50_add"]
    assert dag.arm_inputs(added, 2, "real50_add") == [] and dag.arm_inputs(added, 2, "dose5_add") == ["results/genaug/pools/fold2/steps10.npz"]
    assert dag.folds(section(**{"data.partitions": 2, "data.train_fractions": [1.0, 0.25]})) == list(range(12))


def parser_of(script: str):
    spec = importlib.util.spec_from_file_location(script, ROOT / "scripts" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_parser()


def actions_of(script: str) -> dict:
    return {option: action for action in parser_of(script)._actions for option in action.option_strings}


def test_the_flags_no_step_settings_hold_default_to_the_schema():
    """The arm's flags (the switch, per modality --<m>-<key>) and the data source's: the DAG spells them
    itself (arm_flags, quality_flags, source_flags), so tests/test_contract.py does not see them."""
    actions = actions_of("genaug_classify")
    for modality in MODALITIES:
        for key in KEYS:
            name = flag_name(modality, key)
            assert actions[name].default == default(f"modalities.{modality}.{key}"), name
    assert actions["--use-generative-augmentation"].default is default("use_generative_augmentation")
    quality = actions_of("genaug_quality")
    assert quality[flag_name("depth_map", "batch_limit")].default == default("modalities.depth_map.batch_limit")
    pool = actions_of("genaug_pool")
    assert (pool["--n-images"].default, pool["--seed"].default) == (default("pools.size"), default("pools.seed"))
    data = actions_of("genaug_data")
    for key in ("source", "folder", "csv"):
        assert data[f"--{key}"].default == default(f"data.{key}"), key


# -- the module in the DAG run, and once on the user's own model folders ----------------------------


@pytest.fixture(scope="module")
def users_models_run(tmp_path_factory) -> Path:
    """genaug on the user's model folders (three tiny random rgb pipelines): fold 1's jobs that read them,
    its augmented arm and its quality (the arms' table over every fold is the DAG run's)."""
    workdir = copy_project(tmp_path_factory.mktemp("genaug_folders"))
    for index, folder in enumerate(("rgb_I", "rgb_P", "rgb_R")):
        build_ddim_pipeline(workdir / "toy_models" / folder, channels=3, image_size=8, block_out_channels=(8, 16), seed=index)
    targets = ["results/genaug/quality/fold1.json", "results/genaug/runs/augmented/fold1.json"]
    snakemake(workdir, *targets, "--cores", "2", "--configfile", USER_MODELS, "--config", "modules=[genaug]", timeout=900)
    return workdir


@pytest.mark.dag
def test_dag_table_is_the_predictions_summarized(dag_run):
    results = dag_run / "results" / "genaug"
    section = dag_config()["genaug"]
    dataset = load_dataset(results / "data" / "dataset.npz")
    folds = range(section["data"]["folds"])
    arms = ["baseline", "augmented", "dose50_add", "wrongphase50_replace", "real50_replace"]
    runs = {arm: [load_npz(results / "runs" / arm / f"fold{f}.npz") for f in folds] for arm in arms}
    experiment = pool_predictions(dataset.phase, dataset.patient, runs)
    report = section["report"]
    expected = summarize(experiment, report["n_bootstrap"], report["confidence"], report["seed"], report["kappa_weights"])
    with open(results / "results.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["arm"] for row in rows] == arms
    for row, recomputed in zip(rows, expected):
        for column in ("kappa", "kappa_low", "kappa_high", "macro_f1", "accuracy", "accuracy_diff_low"):
            if recomputed[column] == recomputed[column]:  # not NaN
                assert float(row[column]) == pytest.approx(recomputed[column], abs=1e-12), column
    assert all(float(row["synthetic_per_epoch"]) > 0 for row in rows[1:]) and float(rows[0]["synthetic_per_epoch"]) == 0
    markdown = (results / "results.md").read_text()
    assert "| augmented | generated | replace | 1 | 0.2-0.5 | 2 |" in markdown and "| dose50_add | generated | add | 1 | 0.5-0.5 | 2 |" in markdown
    assert "| wrongphase50_replace | wrong_phase | 0.5 |" in markdown and "| generated, add | 0 0.5 |" in markdown
    for figure in ("comparison.png", "dose_response.png", "data/samples.png", *(f"quality/fold{f}_samples.png" for f in folds)):
        assert (results / figure).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads((results / "summary.json").read_text())
    assert summary["per_run"]["1.0"]["runs"] == [[0, 0], [0, 1]] and section["classifier"]["seeds"] == [0, 1]
    assert [(row["family"], row["metric"]) for row in summary["dose_response"]] == [("generated, add", m) for m in ("kappa", "macro_f1", "accuracy")]
    assert len(summary["provenance"]["inputs"]) == 1 + len(arms) * len(folds) + len(folds)  # dataset, predictions, quality


@pytest.mark.dag
def test_dag_logs_synthetic_counts_and_hit_rates_per_epoch(dag_run):
    epochs = dag_config()["genaug"]["classifier"]["epochs"]
    log = dag_run / "logs" / "genaug" / "genaug_classify" / "augmented_fold0.log"
    lines = re.findall(r"augmented fold 0 seed (\d), epoch (\d+): (\d+) synthetic images in (\d+) batches, cache hit rate ([\d.]+)", log.read_text())
    assert sorted((seed, epoch) for seed, epoch, *_ in lines) == [(s, str(e)) for s in "01" for e in range(1, epochs + 1)]
    history = json.loads((dag_run / "results" / "genaug" / "runs" / "augmented" / "fold0.json").read_text())
    for seed, epoch, count, _, rate in lines:
        record = history["seeds_history"][seed]["epochs"][int(epoch) - 1]
        assert record["synthetic"] == int(count) > 0 and record["cache_hit_rate"] == pytest.approx(float(rate), abs=1e-3)
    assert history["cache"]["loads"] <= 3 and history["augmenting"] and "provenance" in history
    # the job's epochs log, written as it trained: per seed, the records of the history
    records = EpochsLog(log.parent / "augmented_fold0.epochs.jsonl", "").records()
    for seed in "01":
        of_seed = [r for r in records if r["run"] == f"augmented fold 0 seed {seed}"]
        assert [{k: v for k, v in r.items() if k != "run"} for r in of_seed] == history["seeds_history"][seed]["epochs"]
    baseline = json.loads((dag_run / "results" / "genaug" / "runs" / "baseline" / "fold0.json").read_text())
    assert all(r["synthetic"] == 0 for h in baseline["seeds_history"].values() for r in h["epochs"]) and baseline["cache"] is None
    real = json.loads((dag_run / "results" / "genaug" / "runs" / "real50_replace" / "fold0.json").read_text())
    assert (real["augment_source"], real["augment_mode"], real["cache"]) == ("real", "replace", None)
    assert sorted(real["provenance"]["inputs"]) == ["dataset"]  # no pipeline, no pool: real images of the split
    added = json.loads((dag_run / "results" / "genaug" / "runs" / "dose50_add" / "fold0.json").read_text())
    assert added["augment_mode"] == "add" and sorted(added["provenance"]["inputs"]) == ["dataset", "steps2.npz"]
    assert all(r["synthetic"] > 0 for h in added["seeds_history"].values() for r in h["epochs"])


def test_the_users_model_folders_are_read_and_their_quality_tabled(users_models_run):
    results = users_models_run / "results" / "genaug"
    assert not (results / "models").exists()  # models.source folder: nothing trained
    history = json.loads((results / "runs" / "augmented" / "fold1.json").read_text())
    assert sorted(history["provenance"]["inputs"]) == ["dataset", *(f"{f}/unet/diffusion_pytorch_model.safetensors" for f in ("rgb_I", "rgb_P", "rgb_R"))]
    assert sum(record["synthetic"] for h in history["seeds_history"].values() for record in h["epochs"]) > 0
    quality = json.loads((results / "quality" / "fold1.json").read_text())
    rows = quality["rows"]
    assert sorted((r["folder"], r["modality"]) for r in rows) == sorted(
        (folder, m) for folder in ("rgb_I", "rgb_P", "rgb_R") for m in ("depth_rgb", "thermal_rgb")
    )
    assert all(r["fold"] == 1 and r["inference_steps"] == 2 and r["n_synthetic"] == 6 for r in rows)
    assert np.isfinite([r["fid_heldout"] for r in rows if r["fid_heldout"] is not None]).all()
    assert any(name.endswith("rgb_P/unet/diffusion_pytorch_model.safetensors") for name in quality["provenance"]["inputs"])


@pytest.mark.dag
def test_dag_trains_a_pipeline_per_fold_and_folder_and_tables_its_quality(dag_run):
    """The DAG run's own pipelines (models.source trained): one diffusers folder per fold and phase, read back by the arms."""
    section = dag_config()["genaug"]
    results = dag_run / "results" / "genaug"
    folds, folders = range(section["data"]["folds"]), ("rgb_I", "rgb_P", "rgb_R")
    for fold in folds:
        for folder in folders:
            info = json.loads((results / "models" / f"fold{fold}" / f"{folder}.json").read_text())
            assert (info["fold"], info["folder"]) == (fold, folder) and len(info["history"]) == section["pipeline"]["epochs"]
            assert (results / "models" / f"fold{fold}" / folder / "unet" / "diffusion_pytorch_model.safetensors").is_file()
    with open(results / "quality.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert sorted({(r["fold"], r["folder"]) for r in rows}) == sorted((str(f), folder) for f in folds for folder in folders)
    with open(results / "results.csv", newline="") as handle:
        assert [row["arm"] for row in csv.DictReader(handle)] == dag.arms(section)


def test_the_manager_imports_as_the_group_wrote_it_without_torch_until_used():
    code = (
        "import sys, gensynth.genaug; assert 'torch' not in sys.modules; "
        "from gensynth.genaug import GenerativeAugmentationManager, AugmentationConfig; "
        "print(GenerativeAugmentationManager.__module__, AugmentationConfig.__module__)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert result.stdout.split() == ["gensynth.genaug.manager", "gensynth.genaug.augmentation"]
