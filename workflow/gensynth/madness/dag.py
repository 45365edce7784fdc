"""What the DAG knows of madness: the file layout of the units and their loops, the input functions, the scenario
flags, the checks.

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
from ..steps import lookup
from .naming import DETECTION_SCENARIOS, DIGITS_COUNT, MATCHED_LOOP, MNIST_FILES, NEW_REAL_IMAGES, SCENARIOS, w_label
from .original_layout import IMAGE_SIZE as ORIGINAL_IMAGE_SIZE
from .original_layout import NUM_CLASSES, check_checkpoint, check_sample_set, discover_models, discover_sample_sets

ROOT = "results/madness"
SCENARIO_DIR = f"{ROOT}/{{scenario}}/w{{w}}"  # one scenario at one w
# One chain: a unit (an independent initial model) and a training-seed replicate within it.
LOOP = f"{SCENARIO_DIR}/unit{{unit}}/rep{{rep}}"
FIGURES = f"{ROOT}/figures"
DATA = {"npz": f"{ROOT}/data/real.npz", "info": f"{ROOT}/data/real.json"}
LENET = {"ckpt": f"{ROOT}/feature_extractor/lenet.ckpt", "info": f"{ROOT}/feature_extractor/lenet.json"}
PROBES = f"{ROOT}/probes/unit{{unit}}.npz"
INITIAL = {"ckpt": f"{ROOT}/initial/unit{{unit}}/model_initial.ckpt", "info": f"{ROOT}/initial/unit{{unit}}/model_initial.json"}
INITIAL_DATA = {"npz": f"{ROOT}/initial/unit{{unit}}/gen_data_initial_w{{w}}.npz", "info": f"{ROOT}/initial/unit{{unit}}/gen_data_initial_w{{w}}.json"}
GENERATION = {
    "ckpt": f"{LOOP}/model_{{g}}_w{{w}}.ckpt",
    "next": f"{LOOP}/gen_data_{{g}}_w{{w}}.npz",
    "eval": f"{LOOP}/eval_{{g}}_w{{w}}.npz",
    "info": f"{LOOP}/generation_{{g}}_w{{w}}.json",
}
# Measured per chain (one job each: the libraries load once for all its generations).
METRICS = {"json": f"{LOOP}/metrics_w{{w}}.json", "tsne": f"{LOOP}/tsne_w{{w}}.png"}
JACOBIAN = f"{LOOP}/jacobian_w{{w}}.npz"
# The collapse test at one w: full_synthetic against matched_real (naming.DETECTION_SCENARIOS).
DETECTION = {"json": f"{ROOT}/full_synthetic/w{{w}}/detection_w{{w}}.json", "figure": f"{FIGURES}/full_synthetic_w{{w}}_signals.png"}
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


def units(section: dict[str, Any]) -> list[int]:
    return list(range(section["detection"]["initial_models"]))


def unit_pattern(section: dict[str, Any]) -> str:
    return one_of(units(section))


def replicates(section: dict[str, Any]) -> list[int]:
    return list(range(section["detection"]["replicates"]))


def replicate_pattern(section: dict[str, Any]) -> str:
    return one_of(replicates(section))


def scenario_section(section: dict[str, Any], scenario: str) -> dict[str, Any]:
    """A scenario's sizes: its own section, full_synthetic's for matched_real (the same loop on real images)."""
    return section["scenarios"][MATCHED_LOOP if scenario == "matched_real" else scenario]


def per_chain(section: dict[str, Any], pattern: str, scenario: str, w: str) -> list[str]:
    """``pattern`` (with {scenario}, {w}, {unit}, {rep}) for every chain of one scenario at one w, unit-major:
    unit0/rep0, unit0/rep1, ..., unit1/rep0, ..."""
    return [pattern.format(scenario=scenario, w=w, unit=u, rep=r) for u in units(section) for r in replicates(section)]


def chain_generations(section: dict[str, Any], pattern: str):
    """Input function: ``pattern`` (with {g}) for every generation of the job's chain, in order."""
    return lambda wildcards: [
        pattern.format(scenario=wildcards.scenario, w=wildcards.w, unit=wildcards.unit, rep=wildcards.rep, g=g)
        for g in range(scenario_section(section, wildcards.scenario)["generations"])
    ]


def each_chain(section: dict[str, Any], pattern: str):
    """Input function: ``pattern`` for every chain of the job's scenario and w."""
    return lambda wildcards: per_chain(section, pattern, wildcards.scenario, wildcards.w)


def every_chain(section: dict[str, Any], pattern: str, scenarios):
    """Input function: ``pattern`` for every chain of each of ``scenarios`` at the job's w, scenario by scenario."""
    return lambda wildcards: [p for s in scenarios for p in per_chain(section, pattern, s, wildcards.w)]


def detection_runs(section: dict[str, Any]) -> bool:
    """The collapse test needs both of its scenarios in the run."""
    return set(DETECTION_SCENARIOS) <= set(section["scenarios"]["run"])


def previous_generation(wildcards) -> dict[str, str]:
    """Input function: generation g's inputs, generation g-1's samples and checkpoint of its own chain (the unit's
    initial ones for g = 0); matched_real trains on real images, so it reads only the checkpoint."""
    first = int(wildcards.g) == 0
    chain = {"scenario": wildcards.scenario, "w": wildcards.w, "unit": wildcards.unit, "rep": wildcards.rep, "g": int(wildcards.g) - 1}
    synthetic = {} if wildcards.scenario == "matched_real" else {"synthetic": (INITIAL_DATA["npz"] if first else GENERATION["next"]).format(**chain)}
    return {**synthetic, "prev_model": (INITIAL["ckpt"] if first else GENERATION["ckpt"]).format(**chain)}


def previous_flags(wildcards) -> str:
    """Params function: ``[--synthetic FILE] --prev-model FILE``, the job's inputs from the generation before."""
    return " ".join(f"--{name.replace('_', '-')} {shlex.quote(path)}" for name, path in previous_generation(wildcards).items())


def generation_flags(section: dict[str, Any]):
    """Params function: the job's scenario's sizes, n_epoch and N_next, and its new real images per generation
    (fresh's n_real; matched_real's N_next, as many real images as full_synthetic's synthetic ones)."""

    def flags(wildcards) -> str:
        scenario = wildcards.scenario
        own = config_flags(scenario_section(section, scenario), ["n_epoch", "N_next"])
        return own + (f" --n-real {lookup(section, NEW_REAL_IMAGES[scenario])}" if scenario in NEW_REAL_IMAGES else "")

    return flags


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


def scenario_flags(section: dict[str, Any], scenarios, jacobians: bool):
    """Params function: ``--scenario NAME --metrics ... [--jacobians ...]`` for each of ``scenarios`` at the job's w
    (a file per chain, unit-major)."""

    def flags(wildcards) -> str:
        groups = []
        for s in scenarios:
            group = f"--scenario {s} --metrics " + " ".join(shlex.quote(p) for p in per_chain(section, METRICS["json"], s, wildcards.w))
            if jacobians:
                group += " --jacobians " + " ".join(shlex.quote(p) for p in per_chain(section, JACOBIAN, s, wildcards.w))
            groups.append(group)
        return " ".join(groups)

    return flags


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
    """What `rule all` builds: per w, the comparison, and the collapse test when full_synthetic and matched_real
    both run; per scenario and w, the figures; per w of the group's own checkpoints (when madness.original is
    on), their detection JSON."""
    paths = []
    for w in w_labels(section):
        paths += [p.format(w=w) for p in COMPARISON.values()]
        if detection_runs(section):
            paths += [p.format(w=w) for p in (*DETECTION.values(), ERROR_RATES)]
        for s in section["scenarios"]["run"]:
            paths += [p.format(scenario=s, w=w) for p in CURVES.values()]
    return paths + [ORIGINAL["detection"].format(w=w) for w in original_models(section)]


def validate(section: dict[str, Any], config: dict[str, Any]) -> None:
    """What a job would refuse later: the MNIST files, image size against the model and LeNet, probe timesteps
    against n_T, set sizes against what each running scenario's generations need."""
    num_train, num_test = real_split_sizes(section["data"])
    check_model(section["model"], section["data"]["image_size"])
    n_T = section["model"]["n_T"]
    late = [t for t in section["jacobian"]["timesteps"] if t >= n_T]
    if late:
        raise config_error("madness.jacobian.timesteps", section["jacobian"]["timesteps"], f"timesteps below model.n_T = {n_T}")
    run = section["scenarios"]["run"]
    for scenario in (s for s in run if s != "matched_real"):  # matched_real reads no initial set
        n_next = section["scenarios"][scenario]["N_next"]
        if n_next > section["initial"]["N_with_w"]:
            raise config_error(
                f"madness.scenarios.{scenario}.N_next",
                n_next,
                f"at most initial.N_with_w = {section['initial']['N_with_w']} (generation 0 trains on the initial set's first N_next)",
            )
    for scenario, key in NEW_REAL_IMAGES.items():
        generations, per_generation = scenario_section(section, scenario)["generations"], lookup(section, key)
        if scenario in run and per_generation * generations > num_train:
            raise config_error(
                f"madness.{key}",
                per_generation,
                f"at most {num_train // generations}: {generations} generations of {scenario}'s new real images from {num_train} real training images",
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
