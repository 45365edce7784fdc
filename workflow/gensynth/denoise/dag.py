"""What the DAG knows of denoise: data (the phantom's or the user's) -> the tuned baselines and two training
arms over the training seeds -> the validation panel's QA, which promotes the selected checkpoint -> the full
manifest denoised in shards with it -> ROI figures.

Plain Python (the Snakefile reads it at parse time): the file names come from layout.py; the user's panel is
read only to check its SHA-256 and the ROI file only to check its windows (PyYAML, numpy). A function of a
job's wildcards takes the section first and the wildcards (Snakemake's, or any object with the attributes):
the rules bind the section with functools.partial.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from typing import Any

from ..dagtools import config_error, one_of, require_file, uses_phantom
from ..errors import GensynthError
from .layout import BASELINE_FILES, BEST_CHECKPOINT, COMPARISON_NAME, DATA_FILES, QA_FILES, STAGING_FILES, TRAIN_LOGS

ROOT = "results/denoise"
DATA_DIR = f"{ROOT}/data"
PHANTOM = {name: f"{DATA_DIR}/{relative}" for name, relative in DATA_FILES.items()}
PHANTOM_STAGING = {name: f"{DATA_DIR}/{relative}" for name, relative in STAGING_FILES.items()}
BASELINES = {name: f"{ROOT}/baseline/{file}" for name, file in BASELINE_FILES.items()}
ARMS = ("noise2noise", "clean")  # the gated model, and the clean-target comparison
GATED_ARM = "noise2noise"
CHECKPOINT_DIR = f"{ROOT}/checkpoints/{{arm}}/seed_{{seed}}"
CHECKPOINT = f"{CHECKPOINT_DIR}/{BEST_CHECKPOINT}"
PROMOTED_CHECKPOINT = f"{ROOT}/checkpoints/promoted/{BEST_CHECKPOINT}"  # the QA's selected checkpoint, once it passed
TRAIN_LOG_DIR = f"{ROOT}/train/{{arm}}/seed_{{seed}}"
TRAIN = {name: f"{TRAIN_LOG_DIR}/{file}" for name, file in TRAIN_LOGS.items()}
MANIFESTS = ("full", "staging")  # what the shards denoise: the full manifest, and the staging one when asked
DENOISED_DIR = f"{ROOT}/denoised/{{manifest}}"
SHARD = f"{DENOISED_DIR}/shards/shard_{{shard}}.json"
MERGED = {"index": f"{DENOISED_DIR}/denoised_manifest.csv", "summary": f"{DENOISED_DIR}/denoise_summary.json"}
PANEL_EVAL = f"{ROOT}/panel_eval"
QA = {name: f"{PANEL_EVAL}/{file}" for name, file in QA_FILES.items()}
ROI_FIGURE = f"{ROOT}/figures/roi_windows.png"
USER_FILES = ("manifest_full", "train_manifest", "validation_panel", "wavelength_grid", "dose_features_csv", "dose_stats_json")


# params functions: Snakemake's lint wants a folder that prefixes a job's files derived from those files


def phantom_folder(wildcards: Any, output: Any) -> str:
    """The folder the phantom's corpus is written to, from its summary's path."""
    return output.summary[: -len(DATA_FILES["summary"]) - 1]


def staging_folder(wildcards: Any, output: Any) -> str:
    """The folder the staging corpus is written to, from its summary's path."""
    return output.summary[: -len(STAGING_FILES["summary"]) - 1]


def panel_eval_folder(wildcards: Any, output: Any) -> str:
    """The panel QA's folder, from its summary's path."""
    return os.path.dirname(output.summary)


def data_paths(section: dict[str, Any]) -> dict[str, str]:
    """The data every rule reads, by the phantom's names: the phantom's files, or the user's ("" where they have none)."""
    if uses_phantom(section):
        return dict(PHANTOM)
    data = section["data"]
    return {
        "root": data["root_dir"],
        "clean": data["clean_dir"],
        "grid": data["wavelength_grid"],
        "manifest_full": data["manifest_full"],
        "manifest_train": data["train_manifest"],
        "manifest_val": data["val_manifest"] or data["validation_panel"],
        "panel": data["validation_panel"],
        "dose_features": data["dose_features_csv"],
        "dose_stats": data["dose_stats_json"],
    }


def has_clean(section: dict[str, Any]) -> bool:
    return uses_phantom(section) or bool(section["data"]["clean_dir"])


def arms(section: dict[str, Any]) -> list[str]:
    return [arm for arm in ARMS if arm == GATED_ARM or section["train"]["compare_clean"]]


def denoised_manifests(section: dict[str, Any]) -> list[str]:
    return [name for name in MANIFESTS if name == "full" or section["infer"]["staging"]]


def manifest_and_root(section: dict[str, Any], wildcards: Any) -> dict[str, str]:
    """The manifest a shard job denoises (``{manifest}``), and its spectra tree."""
    if wildcards.manifest == "full":
        data = data_paths(section)
        return {"manifest": data["manifest_full"], "root": data["root"]}
    if uses_phantom(section):
        return {"manifest": PHANTOM_STAGING["manifest"], "root": PHANTOM_STAGING["root"]}
    return {"manifest": section["data"]["staging_manifest"], "root": section["data"]["staging_root_dir"]}


def shard_ids(section: dict[str, Any]) -> list[str]:
    return [str(i) for i in range(section["infer"]["shards"])]


def merged_manifest(section: dict[str, Any], wildcards: Any) -> str:
    """The manifest whose shards a merge job joins (``{manifest}``)."""
    return manifest_and_root(section, wildcards)["manifest"]


def shards(section: dict[str, Any], wildcards: Any) -> list[str]:
    """Every shard's record of the manifest (``{manifest}``)."""
    return [SHARD.format(manifest=wildcards.manifest, shard=i) for i in shard_ids(section)]


def shard_pattern(section: dict[str, Any]) -> str:
    return one_of(shard_ids(section))


def seeds(section: dict[str, Any]) -> list[str]:
    return [str(seed) for seed in section["train"]["seeds"]]


def seed_pattern(section: dict[str, Any]) -> str:
    return one_of(seeds(section))


def arm_checkpoints(section: dict[str, Any], arm: str) -> list[str]:
    return [CHECKPOINT.format(arm=arm, seed=seed) for seed in seeds(section)]


def train_flags(section: dict[str, Any], wildcards: Any) -> str:
    """The arm's (``{arm}``) target (and clean tree) and the job's seed (``{seed}``); the warm start when configured."""
    flags = f"--target {wildcards.arm} --seed {wildcards.seed}"
    if wildcards.arm == "clean":
        flags += f" --clean_dir {shlex.quote(data_paths(section)['clean'])}"
    if section["train"]["init_checkpoint"]:
        flags += f" --init_checkpoint {shlex.quote(section['train']['init_checkpoint'])}"
    return flags


def clean_flag(section: dict[str, Any]) -> str:
    """``--clean-dir`` for the QA's reference and the plots, where the data have clean spectra."""
    return f"--clean-dir {shlex.quote(data_paths(section)['clean'])}" if has_clean(section) else ""


def qa_flags(section: dict[str, Any]) -> str:
    """The clean reference, the comparison arm's checkpoints, the validation manifest that ranks the checkpoints,
    the manifests of the leakage check and the expected hash, where there are."""
    data = data_paths(section)
    flags = [clean_flag(section)] if has_clean(section) else []
    if section["train"]["compare_clean"]:
        flags.append(f"--comparison-checkpoint {' '.join(map(shlex.quote, arm_checkpoints(section, 'clean')))} --comparison-name {COMPARISON_NAME}")
    flags.append(f"--train-manifest {shlex.quote(data['manifest_train'])}")
    if has_validation(section):
        flags.append(f"--val-manifest {shlex.quote(data['manifest_val'])}")
    if section["qa"]["expected_hash"]:
        flags.append(f"--expected-hash {section['qa']['expected_hash']}")
    return " ".join(flags)


def has_validation(section: dict[str, Any]) -> bool:
    """A validation manifest of its own (the user's may leave it empty: then the panel stands in, as in the group's recipe)."""
    return uses_phantom(section) or bool(section["data"]["val_manifest"])


def arm_pattern(section: dict[str, Any]) -> str:
    return one_of(arms(section))


def manifest_pattern(section: dict[str, Any]) -> str:
    return one_of(denoised_manifests(section))


def train_inputs(section: dict[str, Any], wildcards: Any) -> dict[str, str]:
    """What the arm (``{arm}``) trains on: the data (and the clean tree); the warm start's checkpoint."""
    data = data_paths(section)
    inputs = {name: data[name] for name in ("root", "manifest_train", "manifest_val", "grid", "dose_features", "dose_stats")}
    if wildcards.arm == "clean":
        inputs["clean"] = data["clean"]
    if section["train"]["init_checkpoint"]:
        inputs["init"] = section["train"]["init_checkpoint"]
    return inputs


def qa_inputs(section: dict[str, Any]) -> dict[str, Any]:
    data = data_paths(section)
    inputs = {
        "checkpoints": arm_checkpoints(section, GATED_ARM),
        **BASELINES,
        "roi": section["qa"]["roi_windows"],
        **{name: data[name] for name in ("panel", "root", "grid", "dose_features", "manifest_train")},
    }
    if has_validation(section):
        inputs["manifest_val"] = data["manifest_val"]
    if has_clean(section):
        inputs["clean"] = data["clean"]
    if section["train"]["compare_clean"]:
        inputs["comparison"] = arm_checkpoints(section, "clean")
    return inputs


def final_outputs(section: dict[str, Any]) -> list[str]:
    """What `rule all` builds: the QA and its figures, every denoised manifest, each arm's training summary per seed."""
    return [
        *QA.values(),
        ROI_FIGURE,
        *(MERGED["summary"].format(manifest=m) for m in denoised_manifests(section)),
        *(TRAIN["summary"].format(arm=arm, seed=seed) for arm in arms(section) for seed in seeds(section)),
    ]


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    """What a job would refuse later: the phantom's design and grid against the ROI windows and the Savitzky-Golay
    windows, the user's files, the clean arm without clean spectra, the panel's hash."""
    baseline = section["baseline"]
    even = [w for w in baseline["windows"] if w % 2 == 0]
    if even:
        raise config_error("denoise.baseline.windows", baseline["windows"], f"odd window lengths (not {even[0]})")
    if max(baseline["polyorders"]) >= min(baseline["windows"]):
        raise config_error("denoise.baseline.polyorders", baseline["polyorders"], f"orders below every window (the shortest is {min(baseline['windows'])})")
    if section["train"]["init_checkpoint"]:
        require_file("denoise.train.init_checkpoint", section["train"]["init_checkpoint"])
    roi = check_roi_windows(section["qa"]["roi_windows"])
    if uses_phantom(section):
        check_phantom(section["phantom"], roi, max(baseline["windows"]))
    else:
        check_user_files(section)


def check_roi_windows(path: str):
    require_file("denoise.qa.roi_windows", path)
    from .quality import load_roi_windows  # numpy and PyYAML only

    try:
        return load_roi_windows(path)
    except GensynthError as exc:
        raise config_error("denoise.qa.roi_windows", path, f"a valid ROI file ({exc})") from None


def check_phantom(phantom: dict[str, Any], roi, longest_window: int) -> None:
    replicates = phantom["replicates"]
    if replicates % 2:
        raise config_error("denoise.phantom.replicates", replicates, "an even number (Noise2Noise pairs 0-1, 2-3, ...)")
    if phantom["extra_pairing_groups"] and replicates < 4:
        raise config_error("denoise.phantom.replicates", replicates, "at least 4 for a second pairing (phantom.extra_pairing_groups > 0)")
    doses = phantom["doses"]
    if len(set(doses)) < 2:
        raise config_error("denoise.phantom.doses", doses, "at least two different doses (the dose monotonicity check)")
    samples = (len(doses) - 1) * len(phantom["samples"]) + len(phantom["last_treatment_samples"])
    angles = len(phantom["angles"])
    groups = samples * angles
    if phantom["extra_pairing_groups"] > groups:
        raise config_error("denoise.phantom.extra_pairing_groups", phantom["extra_pairing_groups"], f"at most the {groups} groups")
    # the panel and the validation loss hold out whole samples (one group per angle): the ceiling of groups / angles
    panel_samples, val_samples = -(-phantom["panel_groups"] // angles), -(-phantom["val_groups"] // angles)
    if panel_samples + val_samples >= samples:
        raise config_error(
            "denoise.phantom.panel_groups",
            phantom["panel_groups"],
            f"panel_groups and val_groups that hold out fewer than the {samples} samples ({angles} group(s) each; training needs one), "
            f"not {panel_samples} + {val_samples}",
        )
    low, high, step = phantom["wavelength_min"], phantom["wavelength_max"], phantom["wavelength_step"]
    points = int(round((high - low) / step)) + 1 if high > low else 0
    if points < 2:
        raise config_error("denoise.phantom.wavelength_max", high, f"a wavelength above wavelength_min = {low} by at least one step")
    if longest_window > points:
        raise config_error("denoise.baseline.windows", longest_window, f"windows of at most the grid's {points} points")
    grid = [low + step * k for k in range(points)]
    for window in roi.windows:
        inside = sum(window.low <= x <= window.high for x in grid)
        if window.low < low or window.high > grid[-1] or inside < 3:
            raise config_error(
                "denoise.qa.roi_windows",
                str(roi.path),
                f"windows inside the phantom's grid {low:g}-{grid[-1]:g} nm with "
                f"3 points or more (window {window.name} [{window.low:g}, {window.high:g}] is not)",
            )


def check_user_files(section: dict[str, Any]) -> None:
    data = section["data"]
    for key in USER_FILES:
        require_file(f"denoise.data.{key}", data[key])
    if data["val_manifest"]:
        require_file("denoise.data.val_manifest", data["val_manifest"])
    require_dir("denoise.data.root_dir", data["root_dir"])
    if data["clean_dir"]:
        require_dir("denoise.data.clean_dir", data["clean_dir"])
    elif section["train"]["compare_clean"]:
        raise config_error("denoise.train.compare_clean", True, "false when data.clean_dir is empty (the clean-target arm needs clean spectra)")
    if section["infer"]["staging"]:
        require_file("denoise.data.staging_manifest", data["staging_manifest"])
        require_dir("denoise.data.staging_root_dir", data["staging_root_dir"])
    expected = section["qa"]["expected_hash"]
    if expected:
        with open(data["validation_panel"], "rb") as handle:
            actual = hashlib.sha256(handle.read()).hexdigest()
        if actual != expected.lower():
            raise config_error(
                "denoise.qa.expected_hash",
                expected,
                f"the SHA-256 of {data['validation_panel']}, {actual} (the fixed panel changed: update the hash if the change was intended)",
            )


def require_dir(key: str, path: str) -> None:
    if not path:
        raise config_error(key, path, "a path to a directory")
    if not os.path.isdir(path):
        raise config_error(key, path, "an existing directory (not found)")
