"""The madness module's expensive steps for a capacity plan (gensynth.capacity): the initial models' training and
sampling, and each running scenario's generations (training on the scenario's set, then sampling N_next + N_eval)."""

from __future__ import annotations

import math
from typing import Any

from ..capacity import DiffusionStep, Probe, Step, array_mb
from ..diffusion.models import UNetConfig
from .data import NUM_CLASSES
from .naming import SCENARIOS

MNIST_TRAIN = 60_000
DIGITS_TRAIN = 1_437  # scikit-learn's 1,797 digits less the held-out fifth


def training_images(section: dict[str, Any]) -> int:
    data = section["data"]
    available = MNIST_TRAIN if data["source"] == "mnist_idx" else DIGITS_TRAIN
    return min(data["max_train"] or available, available)


def scenario_set(section: dict[str, Any], scenario: str, n_train: int) -> tuple[int, int, int, int]:
    """(generations, n_epoch, images trained on, images sampled) of one generation of ``scenario``."""
    own = section["scenarios"]["full_synthetic" if scenario == "matched_real" else scenario]
    n_next = own["N_next"]
    trained = {
        "full_synthetic": n_next,
        "matched_real": n_next,
        "fresh": n_next + own.get("n_real", 0),
        "augmented_synthetic": n_next + n_train,
    }[scenario]
    return own["generations"], own["n_epoch"], trained, n_next + section["N_eval"]


def probes(section: dict[str, Any]) -> list[Probe]:
    n_train, size = training_images(section), section["data"]["image_size"]
    model, train, sampling = section["model"], section["train"], section["sampling"]
    unet = UNetConfig(
        sample_size=size,
        in_channels=1,
        out_channels=1,
        num_classes=NUM_CLASSES,
        block_out_channels=model["block_out_channels"],
        layers_per_block=model["layers_per_block"],
        attention=model["attention"],
        architecture=model["architecture"],
        num_train_timesteps=model["n_T"] if model["architecture"] == "context_unet" else None,
    ).to_dict()
    batch, max_c, steps = train["batch_size"], sampling["max_c"], sampling["num_inference_steps"]
    w_max = max(section["guidance_weights"])
    training = Step(
        "gensynth.capacity:diffusion_train_step",
        DiffusionStep(unet, batch, model["n_T"]).kwargs(),
        0,
        f"training step, batch {batch} x 1 x {size} x {size}",
    )
    sampler = Step(
        "gensynth.capacity:diffusion_sample_step",
        DiffusionStep(unet, max_c, model["n_T"]).kwargs(sampler=sampling["sampler"], guidance_scale=1.0 + w_max),
        0,
        f"{sampling['sampler'].upper()} step, batch {max_c}{' x 2 (guidance)' if w_max else ''} x 1 x {size} x {size}",
    )

    def with_iterations(step: Step, iterations: int) -> Step:
        return Step(step.build, step.kwargs, iterations, step.what)

    units, replicates, ws = section["detection"]["initial_models"], section["detection"]["replicates"], len(section["guidance_weights"])
    data_mb = array_mb(n_train + 10_000, 1, size, size)  # the real training and test images
    found = [
        Probe(
            "madness_train_initial",
            units,
            (with_iterations(training, section["initial"]["n_epoch"] * math.ceil(n_train / batch)),),
            data_mb,
        ),
        Probe(
            "madness_sample_initial",
            units * ws,
            (with_iterations(sampler, math.ceil(section["initial"]["N_with_w"] / max_c) * steps),),
            data_mb + array_mb(section["initial"]["N_with_w"], 1, size, size),
        ),
    ]
    for scenario in (s for s in SCENARIOS if s in section["scenarios"]["run"]):
        generations, n_epoch, trained, sampled = scenario_set(section, scenario, n_train)
        found.append(
            Probe(
                "madness_generation",
                units * replicates * ws * generations,
                (
                    with_iterations(training, n_epoch * math.ceil(trained / batch)),
                    with_iterations(sampler, math.ceil(sampled / max_c) * steps),
                ),
                data_mb + array_mb(trained + sampled, 1, size, size),
                variant=scenario,
            )
        )
    return found
