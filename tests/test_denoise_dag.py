"""denoise in the DAG: the rules and their GPU jobs, shards and staging from the config, one-line config errors,
each step's flags from the config to its script. The DAG run's outputs are read in test_denoise_dag_run.py."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import re
import shlex
from collections import Counter
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, snakemake
from gensynth.config import validate_config
from gensynth.denoise import dag as denoise_dag
from gensynth.denoise import settings as denoise_settings
from gensynth.errors import GensynthError
from gensynth.steps import config_fields, lookup, rule_flags, settings_from_args

DEFAULT = yaml.safe_load((ROOT / "config/config.yaml").read_text())

TOY = ROOT / "tests/configs/denoise_toy.yaml"
ONLY = ("--config", "modules=[denoise]")
RULES = {
    "denoise_phantom": 1,
    "denoise_tune_baselines": 1,
    "denoise_train": 6,
    "denoise_shard": 2,
    "denoise_merge": 1,
    "denoise_panel_qa": 1,
    "denoise_plot_roi": 1,
}


def job_stats(output: str) -> Counter:
    table = output.split("Job stats:")[1].split("\n\n")[0]
    return Counter({m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M) if m.group(1) not in ("total", "all")})


def job_blocks(output: str, rule: str) -> list[str]:
    return [block for block in re.split(r"\n(?=(?:local)?rule \w+:)", output) if block.startswith((f"rule {rule}:", f"localrule {rule}:"))]


def test_the_default_dag_has_every_rule_and_gpu_jobs(project):
    output = snakemake(project, "-n", "-p", "--cores", "2", *ONLY).stdout
    assert job_stats(output) == Counter(RULES)
    for rule in ("denoise_train", "denoise_shard", "denoise_panel_qa"):
        for job in job_blocks(output, rule):
            assert re.search(r"resources: .*\bgpu=1\b", job), job
    jobs = sorted(re.search(r"wildcards: arm=(\w+), seed=(\d+)", job).groups() for job in job_blocks(output, "denoise_train"))
    assert jobs == [(arm, seed) for arm in ("clean", "noise2noise") for seed in ("0", "1", "2")]  # train.seeds: [0, 1, 2]
    train = next(job for job in job_blocks(output, "denoise_train") if "arm=clean, seed=1" in job)
    assert "--target clean --seed 1 --clean_dir results/denoise/data/clean" in train and "--train_manifest results/denoise/data/manifest_train.csv" in train
    assert "--checkpoint_dir results/denoise/checkpoints/clean/seed_1" in train
    qa = next(iter(job_blocks(output, "denoise_panel_qa")))
    checkpoints = " ".join(f"results/denoise/checkpoints/noise2noise/seed_{seed}/mamba_tiny_uv_best.pt" for seed in (0, 1, 2))
    assert f"--checkpoints {checkpoints} " in qa and "--promote-to results/denoise/checkpoints/promoted/mamba_tiny_uv_best.pt" in qa
    assert "--val-manifest results/denoise/data/manifest_val.csv" in qa and "--train-manifest results/denoise/data/manifest_train.csv" in qa
    assert "--forbid-overlap" in qa and "--enforce-gates" in qa
    for job in job_blocks(output, "denoise_shard"):  # the full manifest is denoised by the checkpoint the QA promoted
        assert "--checkpoint results/denoise/checkpoints/promoted/mamba_tiny_uv_best.pt" in job


def test_shards_staging_and_arms_come_from_the_config(project):
    (project / "more.yaml").write_text("denoise:\n  infer: {shards: 3, staging: true}\n  train: {compare_clean: false, seeds: [4]}\n")
    output = snakemake(project, "-n", "-p", "--cores", "2", "--configfile", "more.yaml", *ONLY).stdout
    stats = job_stats(output)
    assert stats["denoise_shard"] == 6 and stats["denoise_merge"] == 2 and stats["denoise_phantom_staging"] == 1
    assert stats["denoise_train"] == 1
    shards = sorted(re.search(r"wildcards: manifest=(\w+), shard=(\d+)", job).groups() for job in job_blocks(output, "denoise_shard"))
    assert shards == [(m, str(i)) for m in ("full", "staging") for i in range(3)]
    assert "--comparison-checkpoint" not in next(iter(job_blocks(output, "denoise_panel_qa")))
    # a shard outside the configured ones is no target
    result = snakemake(project, "-n", "--cores", "1", "results/denoise/denoised/full/shards/shard_3.json", "--configfile", "more.yaml", *ONLY, check=False)
    assert result.returncode != 0 and "MissingRuleException" in result.stdout + result.stderr


@pytest.mark.parametrize(
    "override,message",
    [
        ({"phantom": {"replicates": 5}}, "config key 'denoise.phantom.replicates' = 5: expected an even number"),
        ({"baseline": {"windows": [5, 8]}}, "config key 'denoise.baseline.windows' = [5, 8]: expected odd window lengths (not 8)"),
        (
            {"phantom": {"wavelength_min": 250}},
            "config key 'denoise.qa.roi_windows' = resources/denoise/roi_windows.yaml: expected windows inside the phantom's grid 250-800 nm",
        ),
        (
            {"phantom": {"panel_groups": 20, "val_groups": 14}},
            "config key 'denoise.phantom.panel_groups' = 20: expected panel_groups and val_groups that hold out fewer than the 17 samples",
        ),
        ({"data": {"source": "files"}}, "config key 'denoise.data.manifest_full' = '': expected a path to a file"),
        ({"qa": {"expected_hash": "abc"}}, "config key 'denoise.qa.expected_hash' = abc: expected a string matching"),
    ],
)
def test_bad_denoise_config_is_one_line(override, message, monkeypatch):
    monkeypatch.chdir(ROOT)  # the config's relative paths
    config = copy.deepcopy(DEFAULT)
    config["denoise"] = {**config["denoise"], **{k: {**config["denoise"][k], **v} for k, v in override.items()}}
    with pytest.raises(GensynthError) as error:
        validate_config(config)
        denoise_dag.validate(config["denoise"], config)
    assert "\n" not in str(error.value) and message in str(error.value)


def test_a_files_config_without_clean_spectra_stops_before_any_job(project, tmp_path):
    """The user's files, no clean tree, the clean-target arm still on: one line from snakemake, no job."""
    for name in ("manifest.csv", "grid.npy", "dose.csv", "dose.json"):
        (tmp_path / name).write_text("x")
    data = {
        "source": "files",
        "root_dir": str(tmp_path),
        **{
            key: str(tmp_path / name)
            for key, name in (
                ("manifest_full", "manifest.csv"),
                ("train_manifest", "manifest.csv"),
                ("validation_panel", "manifest.csv"),
                ("wavelength_grid", "grid.npy"),
                ("dose_features_csv", "dose.csv"),
                ("dose_stats_json", "dose.json"),
            )
        },
    }
    (project / "files.yaml").write_text(yaml.safe_dump({"denoise": {"data": data}}))
    result = snakemake(project, "-n", "--configfile", "files.yaml", *ONLY, check=False)
    assert result.returncode != 0
    assert "invalid config: config key 'denoise.train.compare_clean' = true: expected false when data.clean_dir is empty" in result.stdout + result.stderr
    assert not (project / "results").exists()


def script_parser(step: str) -> argparse.ArgumentParser:
    """The parser of a step's script (``"name sub"``: the subcommand's), its required flags (and groups) made optional."""
    stem, _, command = step.partition(" ")
    spec = importlib.util.spec_from_file_location(f"script_{stem}", ROOT / "scripts" / f"{stem}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    parser = module.build_parser()
    if command:
        parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    for action in parser._actions:
        action.required = False
    for group in parser._mutually_exclusive_groups:
        group.required = False
    return parser


@pytest.mark.parametrize("config_file", ["config/config.yaml", "config/full/denoise.yaml"])
def test_every_steps_rule_flags_parse_back_to_the_configs_values(config_file):
    config = copy.deepcopy(DEFAULT)
    config["denoise"] = yaml.safe_load((ROOT / config_file).read_text())["denoise"]
    section = validate_config(config)["denoise"]
    for step, settings in denoise_settings.STEPS.items():
        parsed = settings_from_args(settings, script_parser(step).parse_args(shlex.split(rule_flags(section, settings))))
        for field, key in config_fields(settings):
            value = getattr(parsed, field.name)
            value = list(value) if isinstance(value, tuple) else str(value) if isinstance(value, Path) else value
            assert value == lookup(section, key), f"{step}: {field.name}"


def test_the_training_and_inference_flags_keep_the_groups_underscores():
    train = script_parser("train_denoiser").parse_args(["--d_model", "8", "--batch_size", "4", "--final_lr_fraction", "0.5", "--grad_clip", "2"])
    assert (train.d_model, train.batch_size, train.final_lr_fraction, train.grad_clip) == (8, 4, 0.5, 2.0)
    infer = script_parser("run_denoise_from_manifest").parse_args(["--batch_size", "7", "--num_workers", "3"])
    assert (infer.batch_size, infer.num_workers) == (7, 3)
