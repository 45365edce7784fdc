"""What the DAG knows of madness: the file layout of the loops, the input functions, the scenario flags, the checks.

Plain Python (the Snakefile reads it at parse time); MNIST's IDX files are opened only to read their headers.
"""

from __future__ import annotations

import gzip
import math
import os
import shlex
from typing import Any

from ..dagtools import config_error, config_flags, one_of
from ..diffusion.shape import check_unet_shape
from ..errors import GensynthError
from .naming import DIGITS_COUNT, MNIST_FILES, SCENARIOS, w_label
from .original_layout import IMAGE_SIZE as ORIGINAL_IMAGE_SIZE
from .original_layout import NUM_CLASSES, check_checkpoint, check_sample_set, discover_models, discover_sample_sets

ROOT = "results/madness"
SCENARIO_DIR = f"{ROOT}/{{scenario}}/w{{w}}"  # one scenario at one w
LOOP = f"{SCENARIO_DIR}/rep{{rep}}"  # one replicate of its loop (its own training seed)
FIGURES = f"{ROOT}/figures"
DATA = {"npz": f"{ROOT}/data/real.npz", "info": f"{ROOT}/data/real.json"}
LENET = {"ckpt": f"{ROOT}/feature_extractor/lenet.ckpt", "info": f"{ROOT}/feature_extractor/lenet.json"}
PROBES = f"{ROOT}/probes/probes.npz"
INITIAL = {"ckpt": f"{ROOT}/initial/model_initial.ckpt", "info": f"{ROOT}/initial/model_initial.json"}
INITIAL_DATA = {"npz": f"{ROOT}/initial/gen_data_initial_w{{w}}.npz", "info": f"{ROOT}/initial/gen_data_initial_w{{w}}.json"}
GENERATION = {
    "ckpt": f"{LOOP}/model_{{g}}_w{{w}}.ckpt",
    "next": f"{LOOP}/gen_data_{{g}}_w{{w}}.npz",
    "eval": f"{LOOP}/eval_{{g}}_w{{w}}.npz",
    "info": f"{LOOP}/generation_{{g}}_w{{w}}.json",
}
# Measured per replicate chain (one job each: the libraries load once for all its generations).
METRICS = {"json": f"{LOOP}/metrics_w{{w}}.json", "tsne": f"{LOOP}/tsne_w{{w}}.png"}
JACOBIAN = f"{LOOP}/jacobian_w{{w}}.npz"
DETECTION = {"json": f"{SCENARIO_DIR}/detection_w{{w}}.json", "figure": f"{FIGURES}/{{scenario}}_w{{w}}_signals.png"}
ERROR_RATES = f"{FIGURES}/error_rates_w{{w}}.png"
CURVES = {"curves": f"{FIGURES}/{{scenario}}_w{{w}}_metrics.png", "spectra": f"{FIGURES}/{{scenario}}_w{{w}}_spectra.png"}
COMPARISON = {"table": f"{ROOT}/summary_w{{w}}.csv", "figure": f"{FIGURES}/fid_scenarios_w{{w}}.png"}
SCENARIO_PATTERN = one_of(SCENARIOS)
GENERATION_PATTERN = r"\d+"
# The group's own checkpoints and sample sets (madness.original), one chain per w as their files spell it.
ORIGINAL_DIR = f"{ROOT}/original/w{{w}}"
ORIGINAL = {
    "jacobian": f"{ORIGINAL_DIR}/jacobian_w{{w}}.npz",
    "metrics": f"{ORIGINAL_DIR}/metrics_w{{w}}.json",
    "detection": f"{ORIGINAL_DIR}/detection_w{{w}}.json",
}
NO_MATCH = "(?!)"  # a wildcard constraint that admits nothing


def w_labels(section: dict[str, Any]) -> list[str]:
    return [w_label(w) for w in section["guidance_weights"]]


def w_pattern(section: dict[str, Any]) -> str:
    return one_of(w_labels(section))


def replicates(section: dict[str, Any]) -> list[int]:
    return list(range(section["detection"]["replicates"]))


def replicate_pattern(section: dict[str, Any]) -> str:
    return one_of(replicates(section))


def per_replicate(section: dict[str, Any], pattern: str, scenario: str, w: str) -> list[str]:
    """``pattern`` (with {scenario}, {w}, {rep}) for every replicate chain of one scenario at one w."""
    return [pattern.format(scenario=scenario, w=w, rep=r) for r in replicates(section)]


def chain_generations(section: dict[str, Any], pattern: str):
    """Input function: ``pattern`` (with {g}) for every generation of the job's replicate chain, in order."""
    return lambda wildcards: [
        pattern.format(scenario=wildcards.scenario, w=wildcards.w, rep=wildcards.rep, g=g)
        for g in range(section["scenarios"][wildcards.scenario]["generations"])
    ]


def each_replicate(section: dict[str, Any], pattern: str):
    """Input function: ``pattern`` for every replicate chain of the job's scenario and w."""
    return lambda wildcards: per_replicate(section, pattern, wildcards.scenario, wildcards.w)


def every_scenario(section: dict[str, Any], pattern: str):
    """Input function: ``pattern`` for every replicate chain of every scenario that runs, at the job's w."""
    return lambda wildcards: [p for s in section["scenarios"]["run"] for p in per_replicate(section, pattern, s, wildcards.w)]


def run_outputs(section: dict[str, Any], pattern: str) -> list[str]:
    """``pattern`` for every scenario that runs, its {w} left as a wildcard."""
    return [pattern.replace("{scenario}", s) for s in section["scenarios"]["run"]]


def previous_generation(scenario: str, w: str, rep: int | str, g: int | str) -> dict[str, str]:
    """Generation g reads generation g-1's samples and checkpoint of its own replicate (the initial ones for g = 0)."""
    g = int(g)
    if g == 0:
        return {"synthetic": INITIAL_DATA["npz"].format(w=w), "prev_model": INITIAL["ckpt"]}
    return {
        "synthetic": GENERATION["next"].format(scenario=scenario, w=w, rep=rep, g=g - 1),
        "prev_model": GENERATION["ckpt"].format(scenario=scenario, w=w, rep=rep, g=g - 1),
    }


def generation_flags(section: dict[str, Any], scenario: str, g: int | str) -> str:
    """The scenario's own settings for generation g: n_epoch, N_next, n_real (fresh), N_initial (at g = 0 only)."""
    own = section["scenarios"][scenario]
    keys = ["n_epoch", "N_next", *(["n_real"] if "n_real" in own else []), *(["N_initial"] if int(g) == 0 else [])]
    return config_flags(own, keys)


def mnist_paths(section: dict[str, Any]) -> list[str]:
    """mnist_idx: the four IDX files found in mnist_dir (plain or .gz; validate() has checked they exist), so that
    new files rebuild everything; digits: none."""
    data = section["data"]
    if data["source"] != "mnist_idx":
        return []
    return [find_idx(data["mnist_dir"], stem) for stem in MNIST_FILES.values()]


def idx_candidates(directory: str, stem: str) -> list[str]:
    return [os.path.join(directory, stem), os.path.join(directory, f"{stem}.gz")]


def source_flags(section: dict[str, Any]) -> str:
    data = section["data"]
    flags = f"--source {data['source']}"
    return flags + (f" --mnist-dir {shlex.quote(data['mnist_dir'])}" if data["source"] == "mnist_idx" else "")


def scenario_flags(section: dict[str, Any], w: str, jacobians: bool) -> str:
    """``--scenario NAME --metrics ... [--jacobians ...]`` for every scenario that runs, at one w (a file per replicate chain)."""
    groups = []
    for s in section["scenarios"]["run"]:
        group = f"--scenario {s} --metrics " + " ".join(shlex.quote(p) for p in per_replicate(section, METRICS["json"], s, w))
        if jacobians:
            group += " --jacobians " + " ".join(shlex.quote(p) for p in per_replicate(section, JACOBIAN, s, w))
        groups.append(group)
    return " ".join(groups)


def original_models(section: dict[str, Any]) -> dict[str, dict[int, str]]:
    """w label -> generation -> checkpoint of the group's own loop ({} while madness.original is off)."""
    models_dir = section["original"]["models_dir"]
    return discover_models(models_dir) if models_dir else {}


def original_sample_sets(section: dict[str, Any]) -> dict[str, dict[int, tuple[str, str]]]:
    """w label -> generation -> (images, labels) of the group's sample sets ({} without original.data_dir)."""
    data_dir = section["original"]["data_dir"]
    return discover_sample_sets(data_dir, list(original_models(section))) if data_dir else {}


def original_w_pattern(section: dict[str, Any]) -> str:
    """The {w} of the original rules: the labels of the group's files (their own spelling, 0.0, 0.5)."""
    return one_of(original_models(section)) or NO_MATCH


def original_checkpoints(section: dict[str, Any]):
    """Input function: the job's w's checkpoints, generations in order."""
    return lambda wildcards: list(original_models(section)[wildcards.w].values())


def original_samples(section: dict[str, Any], part: int):
    """Input function: the job's w's sample sets, generations in order; part 0 the images, 1 the labels."""
    return lambda wildcards: [pair[part] for pair in original_sample_sets(section)[wildcards.w].values()]


def original_generations(section: dict[str, Any], of: str):
    """Params function: ``--generations g ...`` of the job's w's checkpoints (of="models") or sample sets (of="samples")."""
    found = original_models if of == "models" else original_sample_sets
    return lambda wildcards: "--generations " + " ".join(str(g) for g in found(section)[wildcards.w])


def original_detection_inputs(section: dict[str, Any]):
    """Input function: the Jacobian spectra of the job's w, and its sample metrics when original.data_dir is set."""
    with_metrics = bool(section["original"]["data_dir"])
    return lambda wildcards: (
        {"jacobian": ORIGINAL["jacobian"].format(w=wildcards.w)} | ({"metrics": ORIGINAL["metrics"].format(w=wildcards.w)} if with_metrics else {})
    )


def original_metrics_flag(section: dict[str, Any]):
    """Params function: ``--metrics FILE`` when the sample sets are measured, else nothing."""
    with_metrics = bool(section["original"]["data_dir"])
    return lambda wildcards: f"--metrics {shlex.quote(ORIGINAL['metrics'].format(w=wildcards.w))}" if with_metrics else ""


def final_outputs(section: dict[str, Any]) -> list[str]:
    """What `rule all` builds: per w, the comparison; per scenario and w, detection and figures; per w of the
    group's own checkpoints (when madness.original is on), their detection JSON."""
    paths = []
    for w in w_labels(section):
        paths += [p.format(w=w) for p in (*COMPARISON.values(), ERROR_RATES)]
        for s in section["scenarios"]["run"]:
            paths += [p.format(scenario=s, w=w) for p in (*DETECTION.values(), *CURVES.values())]
    return paths + [ORIGINAL["detection"].format(w=w) for w in original_models(section)]


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    """What a job would refuse later: the MNIST files, image size against the model and LeNet, probe timesteps
    against n_T, set sizes against what each generation needs."""
    num_train, num_test = real_split_sizes(section["data"])
    check_model(section["model"], section["data"]["image_size"])
    n_T = section["model"]["n_T"]
    late = [t for t in section["jacobian"]["timesteps"] if t >= n_T]
    if late:
        raise config_error("madness.jacobian.timesteps", section["jacobian"]["timesteps"], f"timesteps below model.n_T = {n_T}")
    for scenario in SCENARIOS:
        own = section["scenarios"][scenario]
        if own["N_initial"] > section["initial"]["N_with_w"]:
            raise config_error(
                f"madness.scenarios.{scenario}.N_initial",
                own["N_initial"],
                f"at most initial.N_with_w = {section['initial']['N_with_w']} (the initial set's size)",
            )
    fresh = section["scenarios"]["fresh"]
    if "fresh" in section["scenarios"]["run"] and fresh["n_real"] * fresh["generations"] > num_train:
        raise config_error(
            "madness.scenarios.fresh.n_real",
            fresh["n_real"],
            f"at most {num_train // fresh['generations']}: {fresh['generations']} generations of new real images from {num_train} real training images",
        )
    nearest_k = section["metrics"]["nearest_k"]
    if section["N_eval"] <= nearest_k or num_test <= nearest_k:
        raise config_error(
            "madness.metrics.nearest_k", nearest_k, f"fewer than N_eval = {section['N_eval']} and the {num_test} real test images (PRDC's k-th neighbour)"
        )
    validate_original(section)


def validate_original(section: dict[str, Any]) -> None:
    """The group's own files (madness.original), before any job: the settings they need, then every checkpoint's
    tensors and schedule and every sample set's shapes, read without torch (one line naming the file)."""
    original = section["original"]
    if not original["models_dir"]:
        if original["data_dir"]:
            raise config_error("madness.original.models_dir", "", "the folder of the group's model_{g}_w{w}.pth files when original.data_dir is set")
        return
    for key in ("models_dir", "data_dir"):
        if original[key] and not os.path.isdir(original[key]):
            raise config_error(f"madness.original.{key}", original[key], "an existing folder (not found)")
    image_size = section["data"]["image_size"]
    if image_size != ORIGINAL_IMAGE_SIZE:
        raise config_error(
            "madness.data.image_size",
            image_size,
            f"{ORIGINAL_IMAGE_SIZE} while madness.original.models_dir is set: the group's checkpoints take {ORIGINAL_IMAGE_SIZE}x{ORIGINAL_IMAGE_SIZE} "
            "images, and their probes and FID reference are the real test split",
        )
    if original["n_classes"] != NUM_CLASSES:
        raise config_error(
            "madness.original.n_classes", original["n_classes"], f"{NUM_CLASSES}: the real data's digit classes, which the probes are conditioned on"
        )
    if original["n_feat"] % 8:
        raise config_error("madness.original.n_feat", original["n_feat"], "a multiple of 8 (the ContextUnet's GroupNorm(8))")
    betas, n_T = original["betas"], original["n_T"]
    if not betas[0] < betas[1]:
        raise config_error("madness.original.betas", betas, "an increasing pair [first, last]")
    timesteps = section["jacobian"]["timesteps"]
    if any(not 1 <= t <= n_T for t in timesteps):
        raise config_error(
            "madness.jacobian.timesteps", timesteps, f"timesteps in 1..original.n_T = {n_T} while original.models_dir is set (the group's steps)"
        )
    models = original_models(section)
    if not models:
        raise config_error("madness.original.models_dir", original["models_dir"], "a folder holding model_{g}_w{w}.pth files: none found there")
    for paths in models.values():
        for path in paths.values():
            check_checkpoint(path, original["n_feat"], original["n_classes"], n_T, betas)
    for w, sets in original_sample_sets(section).items():
        if not sets:
            raise config_error(
                "madness.original.data_dir", original["data_dir"], f"a folder holding gen_data_with_w{{g}}_w{w} and gen_index_with_w{{g}}_w{w}: none for w {w}"
            )
        for images, labels in sets.values():
            check_sample_set(images, labels)


def check_model(model: dict[str, Any], image_size: int) -> None:
    channels = model["block_out_channels"]
    if image_size % 4:
        raise config_error("madness.data.image_size", image_size, "a multiple of 4 (LeNet's two 2x poolings)")
    check_unet_shape(channels, image_size, channels_key="madness.model.block_out_channels", size_key="madness.data.image_size")
    if model["architecture"] == "context_unet":
        if len(channels) != 2 or channels[1] != 2 * channels[0]:
            raise config_error("madness.model.block_out_channels", channels, "[n_feat, 2 * n_feat] for context_unet (its two levels)")
        if model["attention"] or model["layers_per_block"] != 1:
            raise config_error("madness.model.attention", model["attention"], "false with layers_per_block 1 for context_unet")


def real_split_sizes(data: dict[str, Any]) -> tuple[int, int]:
    """Training and test images the data rule will keep (the MNIST files checked, their headers read)."""
    if data["source"] == "digits":
        n_test = math.ceil(data["test_fraction"] * DIGITS_COUNT)  # scikit-learn's train_test_split rounds the test share up
        num_train, num_test = DIGITS_COUNT - n_test, n_test
    else:
        files = {name: find_idx(data["mnist_dir"], stem) for name, stem in MNIST_FILES.items()}
        num_train, num_test = idx_count(files["y_train"]), idx_count(files["y_test"])
    return at_most(num_train, data["max_train"]), at_most(num_test, data["max_test"])


def at_most(count: int, limit: int) -> int:
    return min(count, limit) if limit else count


def find_idx(directory: str, stem: str) -> str:
    if not directory:
        raise config_error("madness.data.mnist_dir", directory, "the folder of the four MNIST IDX files when data.source is mnist_idx")
    found = [p for p in idx_candidates(directory, stem) if os.path.isfile(p)]
    if not found:
        raise config_error("madness.data.mnist_dir", directory, f"a folder holding {stem} (or {stem}.gz): not found there")
    return found[0]


def idx_count(path: str) -> int:
    """The item count of an IDX file from its header (a gzipped one decompressed just that far)."""
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as handle:
            header = handle.read(8)
    except OSError as exc:
        raise GensynthError(f"{path}: not readable ({exc})") from None
    if len(header) < 8 or header[:2] != b"\0\0":
        raise GensynthError(f"{path}: not an IDX file (expected the magic number 0x0000, a type code and rank)")
    return int.from_bytes(header[4:8], "big")
