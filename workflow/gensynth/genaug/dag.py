"""What the DAG knows of genaug: the files, the arms of the experiment, the model folders per fold, the flags, the checks.

Plain Python (the Snakefile reads it at parse time): no torch, no diffusers; the user's files are only
checked to exist.

The experiment's arms are DAG wildcards: ``baseline`` (the switch off), ``augmented`` (the
modalities' settings) and, per value of ``sweep.<key>``, ``augmented_<key><value>`` that differs from
``augmented`` in that setting alone (``augmented_prob0.3``, ``augmented_mix0.05-0.15``,
``augmented_steps20``); the dose axis, ``dose<percent>_<mode>`` (``dose15_replace``: 15 % of every
training batch synthetic, prob 1), and its controls, ``wrongphase<percent>_<mode>`` and
``real<percent>_<mode>``.

The ``fold`` wildcard numbers the dataset's splits: regime (``data.train_fractions``) first, then
partition (``data.partitions``), then fold; with one of each, split k is fold k.
"""

from __future__ import annotations

import os
from typing import Any

from ..dagtools import config_error, one_of, require_file, uses_phantom
from ..diffusion.shape import check_unet_shape
from ..steps import flag
from .augmentation import MODALITIES, MODEL_FOLDERS, MODEL_KIND, PHASES, model_folder, validate_augmentation
from .flags import flag_name, prompts_value

ROOT = "results/genaug"
DATA = {
    "npz": f"{ROOT}/data/dataset.npz",
    "info": f"{ROOT}/data/dataset.json",
    "splits": f"{ROOT}/data/splits.csv",
    "samples": f"{ROOT}/data/samples.png",
}
MODELS = f"{ROOT}/models/fold{{fold}}"  # the fold's models_5_7: one pipeline folder per {kind}_{phase}
MODEL = {"folder": f"{MODELS}/{{folder}}", "info": f"{MODELS}/{{folder}}.json"}
POOL = f"{ROOT}/pools/fold{{fold}}/steps{{steps}}.npz"  # the split's synthetic images per used folder, at one step count
RUN = {
    "predictions": f"{ROOT}/runs/{{arm}}/fold{{fold}}.npz",
    "history": f"{ROOT}/runs/{{arm}}/fold{{fold}}.json",
    "ckpt": f"{ROOT}/runs/{{arm}}/fold{{fold}}.ckpt",
}
QUALITY = {"json": f"{ROOT}/quality/fold{{fold}}.json", "samples": f"{ROOT}/quality/fold{{fold}}_samples.png"}
REPORT = {
    "table": f"{ROOT}/results.csv",
    "markdown": f"{ROOT}/results.md",
    "figure": f"{ROOT}/comparison.png",
    "dose": f"{ROOT}/dose_response.csv",
    "dose_figure": f"{ROOT}/dose_response.png",
    "quality": f"{ROOT}/quality.csv",
    "json": f"{ROOT}/summary.json",
}
BASELINE, AUGMENTED = "baseline", "augmented"
SWEEP_LABELS = {"prob": "prob", "mix_ratio_range": "mix", "inference_steps": "steps"}
SOURCE_LABELS = {"generated": "dose", "wrong_phase": "wrongphase", "real": "real"}  # the dose arms' and the controls' names
ARM_KEYS = ("source", "mode")  # what an arm sets for the whole batch, beside the modalities' settings
FOLDER_PATTERN = one_of(MODEL_FOLDERS)


def enabled_modalities(section: dict[str, Any]) -> list[str]:
    """The modalities the augmented arms augment (their own flag; the switch decides whether those arms exist)."""
    return [m for m in MODALITIES if section["modalities"][m]["enabled"]]


def value_label(value: Any) -> str:
    return "-".join(f"{v:g}" for v in value) if isinstance(value, list) else f"{value:g}"


def arm_overrides(section: dict[str, Any]) -> dict[str, dict[str, Any] | None]:
    """Arm -> the settings it changes for every enabled modality (None: the baseline, no augmentation)."""
    arms: dict[str, dict[str, Any] | None] = {BASELINE: None}
    if not section["use_generative_augmentation"]:
        return arms
    arms[AUGMENTED] = {}
    enabled = enabled_modalities(section)
    for key, label in SWEEP_LABELS.items():
        for value in section["sweep"][key]:
            if all(section["modalities"][m][key] == value for m in enabled):
                continue  # the base setting: that is `augmented`
            arms[f"{AUGMENTED}_{label}{value_label(value)}"] = {key: value}
    for source, share, mode in dose_arms(section["dose"]):
        arms[dose_arm(source, share, mode)] = fixed_share(share, source, mode)
    return arms


def dose_arms(dose: dict[str, Any]) -> list[tuple[str, float, str]]:
    """(source, share, mode) of the dose axis's arms, then of its controls."""
    axis = [("generated", share, mode) for share in dose["shares"] for mode in dose["modes"]]
    return axis + [(source, dose["controls_share"], dose["controls_mode"]) for source in dose["controls"]]


def dose_arm(source: str, share: float, mode: str) -> str:
    """``dose15_replace``, ``wrongphase50_replace``, ``real50_add``: the source, the share in percent, the mode."""
    return f"{SOURCE_LABELS[source]}{100 * share:g}_{mode}"


def fixed_share(share: float, source: str, mode: str) -> dict[str, Any]:
    """An arm putting ``share`` of every training batch (prob 1) from ``source`` in ``mode``."""
    return {"prob": 1.0, "mix_ratio_range": [share, share], "source": source, "mode": mode}


def arm_design(section: dict[str, Any], arm: str) -> dict[str, str]:
    """An augmented arm's source and mode (the production and sweep arms: generated, replace)."""
    overrides = arm_overrides(section)[arm] or {}
    return {"source": overrides.get("source", "generated"), "mode": overrides.get("mode", "replace")}


def arm_steps(section: dict[str, Any], arm: str) -> list[int]:
    """The step counts an augmented arm's enabled modalities sample at (the pools it reads)."""
    overrides = arm_overrides(section)[arm] or {}
    return sorted({overrides.get("inference_steps", section["modalities"][m]["inference_steps"]) for m in enabled_modalities(section)})


def base_values(section: dict[str, Any]) -> int:
    """How many sweep values equal the base setting of every enabled modality (they are the `augmented` arm)."""
    enabled = enabled_modalities(section)
    return sum(all(section["modalities"][m][key] == value for m in enabled) for key in SWEEP_LABELS for value in section["sweep"][key])


def arms(section: dict[str, Any]) -> list[str]:
    return list(arm_overrides(section))


def arm_pattern(section: dict[str, Any]) -> str:
    return one_of(arms(section))


def folds(section: dict[str, Any]) -> list[int]:
    """The dataset's splits (gensynth.genaug.data.SplitPlan): folds x partitions x regimes."""
    data = section["data"]
    return list(range(data["folds"] * data["partitions"] * len(data["train_fractions"])))


def fold_pattern(section: dict[str, Any]) -> str:
    return one_of(str(f) for f in folds(section))


def used_modalities(section: dict[str, Any]) -> list[str]:
    """The modalities the augmented arms augment: the enabled ones, none with the switch off."""
    return enabled_modalities(section) if section["use_generative_augmentation"] else []


def used_folders(section: dict[str, Any]) -> list[str]:
    """The model folders the augmented arms draw from, in models_5_7's order."""
    used = {model_folder(m, p) for m in used_modalities(section) for p in PHASES}
    return [f for f in MODEL_FOLDERS if f in used]


def model_folders(section: dict[str, Any]) -> list[str]:
    """The model folders trained (or used) and assessed: the used ones, or all nine."""
    return list(MODEL_FOLDERS) if section["models"]["folders"] == "all" else used_folders(section)


def trains_models(section: dict[str, Any]) -> bool:
    return section["models"]["source"] == "trained"


def models_dir(section: dict[str, Any], fold: int | str) -> str:
    """The fold's models_5_7: trained per fold, or the user's folder (the same for every fold)."""
    return MODELS.format(fold=fold) if trains_models(section) else section["models"]["folder"]


def data_inputs(section: dict[str, Any]) -> list[str]:
    """The data rule reads the user's CSV (a changed image alone needs --forcerun genaug_data); the phantom reads nothing."""
    data = section["data"]
    return [os.path.join(data["folder"], data["csv"])] if data["source"] == "folder" else []


def source_flags(section: dict[str, Any]) -> str:
    """``--source phantom``, or ``--source folder --folder DIR --csv NAME``."""
    if uses_phantom(section):
        return "--source phantom"
    data = section["data"]
    return f"--source folder {flag('--folder', data['folder'])} {flag('--csv', data['csv'])}"


def reads_images(section: dict[str, Any], arm: str) -> bool:
    """Whether an arm draws synthetic images (not the baseline, not the real-image control)."""
    return arm != BASELINE and arm_design(section, arm)["source"] != "real"


def arm_inputs(section: dict[str, Any], fold: int | str, arm: str) -> list[str]:
    """What an arm's job reads beside the dataset: the split's pools (trained pipelines) or the user's folders."""
    if not reads_images(section, arm):
        return []
    if trains_models(section):
        return [POOL.format(fold=fold, steps=steps) for steps in arm_steps(section, arm)]
    return model_inputs(section, fold, used_folders(section))


def arm_images_flag(section: dict[str, Any], fold: int | str, arm: str) -> str:
    """``--pools FILE...`` (trained pipelines) or ``--models DIR`` (the user's folder) for an arm drawing synthetic images."""
    if not reads_images(section, arm):
        return ""
    if trains_models(section):
        return flag("--pools", arm_inputs(section, fold, arm))
    return flag("--models", models_dir(section, fold))


def model_inputs(section: dict[str, Any], fold: int | str, folders: list[str] | None = None) -> list[str]:
    """What a job reading the split's pipelines depends on (the trained folders, or the user's model_index.json
    files): ``folders``, or every assessed one."""
    folders = model_folders(section) if folders is None else folders
    if trains_models(section):
        return [MODEL["folder"].format(fold=fold, folder=f) for f in folders]
    return [os.path.join(section["models"]["folder"], f, "model_index.json") for f in folders]


def pool_steps(section: dict[str, Any]) -> list[int]:
    """The step counts the pools are made at: those of the arms that draw synthetic images."""
    return sorted({steps for arm in arms(section) if reads_images(section, arm) for steps in arm_steps(section, arm)})


def steps_pattern(section: dict[str, Any]) -> str:
    return one_of(str(steps) for steps in pool_steps(section))


def pool_flags(section: dict[str, Any]) -> str:
    """The folders a pool holds (the used ones) and its size."""
    return " ".join([flag("--folders", used_folders(section)), flag("--n-images", section["pools"]["size"]), flag("--seed", section["pools"]["seed"])])


def arm_flags(section: dict[str, Any], arm: str) -> str:
    """The switch, and for an augmented arm the prompts and the enabled modalities' settings (the sweep's value
    among them); a disabled modality gets only ``--no-<m>-enabled``, the baseline only the switch."""
    overrides = arm_overrides(section).get(arm)
    if overrides is None:
        return flag("--use-generative-augmentation", False)
    design = arm_design(section, arm)
    overrides = {key: value for key, value in overrides.items() if key not in ARM_KEYS}
    parts = [
        flag("--use-generative-augmentation", True),
        flag("--augment-source", design["source"]),
        flag("--augment-mode", design["mode"]),
        flag("--prompts", prompts_value(section["prompts"])),
    ]
    for modality in MODALITIES:
        settings = {**section["modalities"][modality], **overrides}
        if not settings["enabled"]:
            settings = {"enabled": False}
        parts += [flag(flag_name(modality, key), value) for key, value in settings.items()]
    return " ".join(parts)


def quality_steps(section: dict[str, Any]) -> list[int]:
    """The step counts the quality rule samples at: the enabled modalities' (or, with none, those of every modality
    drawing from the assessed folders) and the sweep's."""
    kinds = {folder.rsplit("_", 1)[0] for folder in model_folders(section)}
    sources = used_modalities(section) or [m for m in MODALITIES if MODEL_KIND[m] in kinds]
    return sorted({section["modalities"][m]["inference_steps"] for m in sources} | set(section["sweep"]["inference_steps"]))


def quality_flags(section: dict[str, Any]) -> str:
    """The folders and step counts to assess, and the modalities' generation settings."""
    parts = [
        flag("--folders", model_folders(section)),
        flag("--inference-steps", quality_steps(section)),
        flag("--prompts", prompts_value(section["prompts"])),
    ]
    for modality in MODALITIES:
        parts += [flag(flag_name(modality, key), section["modalities"][modality][key]) for key in ("batch_limit", "guidance_scale")]
    return " ".join(parts)


def run_files(section: dict[str, Any], kind: str) -> dict[str, list[str]]:
    """Arm -> its per-fold files of one kind (predictions, history)."""
    return {arm: [RUN[kind].format(arm=arm, fold=f) for f in folds(section)] for arm in arms(section)}


def every_run_file(section: dict[str, Any], kind: str) -> list[str]:
    """Every arm's per-fold files of one kind, arm after arm: what the report reads."""
    return [path for paths in run_files(section, kind).values() for path in paths]


def report_run_flags(section: dict[str, Any]) -> str:
    """``--arm NAME PREDICTIONS... --history NAME HISTORIES...`` for every arm."""
    predictions, histories = run_files(section, "predictions"), run_files(section, "history")
    return " ".join(flag("--arm", [arm, *predictions[arm]]) + " " + flag("--history", [arm, *histories[arm]]) for arm in arms(section))


def quality_files(section: dict[str, Any]) -> list[str]:
    return [QUALITY["json"].format(fold=f) for f in folds(section)] if model_folders(section) else []


def final_outputs(section: dict[str, Any]) -> list[str]:
    """The comparison (table, markdown, figure, quality table, summary); it needs every other output."""
    return [*REPORT.values(), DATA["samples"], *[QUALITY["samples"].format(fold=f) for f in folds(section) if model_folders(section)]]


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    """Checks the schema cannot make: the augmentation settings and prompts (helper: validate_augmentation),
    the switch against the enabled modalities and the sweep, the UNet against the image size, the user's
    data and model folders, and enough patients for the folds."""
    validate_augmentation(section)
    enabled = enabled_modalities(section)
    if section["use_generative_augmentation"] and not enabled:
        raise config_error("genaug.use_generative_augmentation", True, "at least one modality with enabled: true (none is)")
    if not section["use_generative_augmentation"] and any(section["sweep"].values()):
        raise config_error("genaug.sweep", section["sweep"], "no sweep values while use_generative_augmentation is false (no arm to vary)")
    dose = section["dose"]
    if dose["shares"] and not dose["modes"]:
        raise config_error("genaug.dose.modes", dose["modes"], "at least one of replace, add when dose.shares are given")
    named = [dose_arm(source, share, mode) for source, share, mode in dose_arms(dose)]
    if len(set(named)) != len(named):
        raise config_error("genaug.dose.shares", dose["shares"], "shares that name distinct arms in whole or fractional percents (two print alike)")
    for low, high in section["sweep"]["mix_ratio_range"]:
        if low > high:
            raise config_error("genaug.sweep.mix_ratio_range", [low, high], "low <= high (the range is reversed)")
    swept = sum(len(values) for values in section["sweep"].values())
    sweep_arms = [arm for arm in arms(section) if arm.startswith(f"{AUGMENTED}_")]
    if section["use_generative_augmentation"] and len(sweep_arms) + base_values(section) != swept:
        raise config_error("genaug.sweep", section["sweep"], "values that name distinct arms (two print alike with 6 digits)")
    check_unet_shape(
        section["pipeline"]["block_out_channels"],
        section["data"]["image_size"],
        channels_key="genaug.pipeline.block_out_channels",
        size_key="genaug.data.image_size",
    )
    width = section["classifier"]["width"]
    if width % 2:
        raise config_error("genaug.classifier.width", width, "an even number (its first convolution has width / 2)")
    check_data(section)
    check_models(section)


def check_data(section: dict[str, Any]) -> None:
    data = section["data"]
    if data["source"] == "folder":
        if not data["folder"] or not os.path.isdir(data["folder"]):
            raise config_error("genaug.data.folder", data["folder"], "an existing data folder when data.source is folder")
        require_file("genaug.data.csv", os.path.join(data["folder"], data["csv"]))
        return
    patients, n_folds = section["phantom"]["patients"], data["folds"]
    if patients < n_folds:
        raise config_error("genaug.phantom.patients", patients, f"at least data.folds = {n_folds} (one test patient per fold)")
    training = patients - -(-patients // n_folds)  # the fewest training patients of a fold
    n_val = max(1, round(data["val_fraction"] * training)) if data["val_fraction"] > 0 else 0
    if n_val >= training:
        raise config_error(
            "genaug.data.val_fraction", data["val_fraction"], f"a share that leaves training patients ({training} per fold, {n_val} of them for validation)"
        )


def check_models(section: dict[str, Any]) -> None:
    if trains_models(section) or not model_folders(section):
        return
    folder = section["models"]["folder"]
    if not folder or not os.path.isdir(folder):
        raise config_error("genaug.models.folder", folder, "an existing folder of {kind}_{phase} pipelines when models.source is folder")
    for name in model_folders(section):
        path = os.path.join(folder, name, "model_index.json")
        if not os.path.isfile(path):
            raise config_error("genaug.models.folder", folder, f"a folder holding {name}/model_index.json (a diffusers pipeline): not found")
