"""The genaug module's expensive steps for a capacity plan (gensynth.capacity): each split's pipelines (one UNet
per model folder), the synthetic pools they fill, and each arm's classifier runs (one per seed).

Counts follow the phantom's visits (or the user's CSV rows): a split trains on ``(1 - 1/folds) x (1 - val_fraction)
x train_fraction`` of the patients; a folder's pipeline on the training images of its phase, both RGB modalities
for an ``rgb_*`` folder.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from ..capacity import Probe, Step, array_mb
from . import dag
from .augmentation import CHANNELS, MODALITIES, PHASES, image_channels

POOL_BATCH = 64  # images per pipeline call when a pool is made (gensynth.genaug.quality.folder_sampler)


def visits(section: dict[str, Any]) -> int:
    if section["data"]["source"] == "phantom":
        return section["phantom"]["patients"] * section["phantom"]["visits"]
    import pandas as pd

    return len(pd.read_csv(os.path.join(section["data"]["folder"], section["data"]["csv"])))


def pipeline_train_step(
    device, channels: int, image_size: int, block_out_channels: list[int], layers_per_block: int, batch: int, num_train_timesteps: int
) -> Callable[[int], None]:
    """One step of a folder's pipeline training (unconditional UNet, the shared diffusion trainer)."""
    import torch

    from ..diffusion import DiffusionTrainConfig, diffusion_trainer, make_train_scheduler
    from .pipelines import unconditional_unet

    unet = unconditional_unet(channels, image_size, block_out_channels, layers_per_block).to(device)
    trainer = diffusion_trainer(unet, make_train_scheduler(num_train_timesteps), DiffusionTrainConfig(batch_size=batch, cond_dropout=0.0))
    x = torch.randn(batch, channels, image_size, image_size, device=device)

    def run(n: int) -> None:
        for _ in range(n):
            trainer.train_step(x)

    return run


def pipeline_sample_step(device, channels: int, image_size: int, block_out_channels: list[int], layers_per_block: int, batch: int) -> Callable[[int], None]:
    """One DDIM step of a folder's pipeline on a batch (the UNet's forward pass and the scheduler's update)."""
    import torch
    from diffusers import DDIMScheduler

    from .pipelines import unconditional_unet

    unet = unconditional_unet(channels, image_size, block_out_channels, layers_per_block).to(device).eval()
    scheduler = DDIMScheduler(num_train_timesteps=1000)
    x = torch.randn(batch, channels, image_size, image_size, device=device)

    def run(n: int) -> None:
        scheduler.set_timesteps(n)
        sample = x
        with torch.no_grad():
            for t in scheduler.timesteps:
                sample = scheduler.step(unet(sample, t).sample, t, sample).prev_sample

    return run


def classifier_step(device, width: int, image_size: int, batch: int) -> Callable[[int], None]:
    """One step of the four-modality fusion classifier."""
    import torch

    from ..training import TrainConfig, Trainer
    from .classifier import FusionClassifier, cross_entropy

    trainer = Trainer(FusionClassifier(width).to(device), cross_entropy, TrainConfig(batch_size=batch))
    labels, rows = torch.randint(0, len(PHASES), (batch,), device=device), torch.arange(batch, device=device)
    images = [torch.rand(batch, image_channels(m), image_size, image_size, device=device) for m in MODALITIES]

    def run(n: int) -> None:
        for _ in range(n):
            trainer.train_step(labels, rows, *images)

    return run


def probes(section: dict[str, Any]) -> list[Probe]:
    data, pipeline, classifier = section["data"], section["pipeline"], section["classifier"]
    size, splits = data["image_size"], len(dag.folds(section))
    n_visits = visits(section)
    share = (1 - 1 / data["folds"]) * (1 - data["val_fraction"]) * max(data["train_fractions"])
    train_visits = math.ceil(n_visits * share)
    dataset_mb = sum(array_mb(n_visits, image_channels(m), size, size) for m in MODALITIES)
    found = []
    folders = dag.model_folders(section) if dag.trains_models(section) else []
    shape = {"image_size": size, "block_out_channels": list(pipeline["block_out_channels"]), "layers_per_block": pipeline["layers_per_block"]}
    for kind in dict.fromkeys(folder.rsplit("_", 1)[0] for folder in folders):
        channels, images = CHANNELS[kind], math.ceil(train_visits / len(PHASES)) * (2 if kind == "rgb" else 1)
        step = Step(
            "gensynth.genaug.capacity:pipeline_train_step",
            {"channels": channels, "batch": pipeline["batch_size"], "num_train_timesteps": pipeline["num_train_timesteps"], **shape},
            pipeline["epochs"] * math.ceil(images / pipeline["batch_size"]),
            f"training step, batch {pipeline['batch_size']} x {channels} x {size} x {size}",
        )
        jobs = splits * sum(folder.startswith(f"{kind}_") for folder in folders)
        found.append(Probe("genaug_train_pipeline", jobs, (step,), dataset_mb + array_mb(images, channels, size, size), variant=kind))
    used = dag.used_folders(section) if dag.trains_models(section) else []
    for steps in dag.pool_steps(section) if used else []:
        calls = sum(math.ceil(section["pools"]["size"] / POOL_BATCH) for _ in used) * steps
        channels = max(CHANNELS[folder.rsplit("_", 1)[0]] for folder in used)
        step = Step(
            "gensynth.genaug.capacity:pipeline_sample_step",
            {"channels": channels, "batch": min(POOL_BATCH, section["pools"]["size"]), **shape},
            calls,
            f"DDIM step, batch {min(POOL_BATCH, section['pools']['size'])} x {channels} x {size} x {size}",
        )
        found.append(Probe("genaug_pool", splits, (step,), array_mb(len(used) * section["pools"]["size"], channels, size, size), variant=f"{steps} steps"))
    step = Step(
        "gensynth.genaug.capacity:classifier_step",
        {"width": classifier["width"], "image_size": size, "batch": classifier["batch_size"]},
        len(classifier["seeds"]) * classifier["epochs"] * math.ceil(train_visits / classifier["batch_size"]),
        f"classifier step, batch {classifier['batch_size']} x 4 modalities x {size} x {size}",
    )
    found.append(Probe("genaug_classify", len(dag.arms(section)) * splits, (step,), dataset_mb))
    return found
