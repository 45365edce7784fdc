"""The replicas module's expensive steps for a capacity plan (gensynth.capacity): training the replica model and
sampling the replicas, at the config's image size, UNet and batch sizes."""

from __future__ import annotations

import math
from typing import Any

from ..capacity import DiffusionStep, Probe, Step, array_mb
from ..diffusion.models import UNetConfig
from ..errors import GensynthError
from ..io import npz_member_shape


def slice_counts(section: dict[str, Any]) -> tuple[int, int, int]:
    """(training slices, test slices, image size): the phantom's from its settings, the user's from their files."""
    if section["data"]["source"] == "phantom":
        phantom = section["phantom"]
        per_domain = phantom["slices_per_subject"]
        subjects = (phantom["subjects_control"], phantom["subjects_epilepsy"])
        test = sum(max(1, round(n * phantom["test_fraction"])) * per_domain for n in subjects)
        return sum(subjects) * per_domain - test, test, phantom["image_size"]
    try:
        train_shape = npz_member_shape(section["data"]["train_npz"], "images")
        test_shape = npz_member_shape(section["data"]["test_npz"], "images")
    except GensynthError as exc:
        raise GensynthError(f"replicas capacity: the user's slices give the shapes: {exc}") from None
    return train_shape[0], test_shape[0], train_shape[-1]


def probes(section: dict[str, Any]) -> list[Probe]:
    n_train, n_test, size = slice_counts(section)
    model, train, sample = section["model"], section["train"], section["sample"]
    unet = UNetConfig(
        sample_size=size,
        in_channels=2,
        out_channels=2,
        num_classes=2 * section["z_bins"],
        block_out_channels=model["block_out_channels"],
        layers_per_block=model["layers_per_block"],
        attention=model["attention"],
    ).to_dict()
    n_fit = n_train - round(n_train * train.get("val_fraction", 0.1))
    training = DiffusionStep(unet, train["batch_size"])
    sampling = DiffusionStep(unet, sample["batch_size"])
    guided = sample["guidance_scale"] != 1.0
    return [
        Probe(
            rule="replicas_train",
            jobs=1,
            steps=(
                Step(
                    "gensynth.capacity:diffusion_train_step",
                    training.kwargs(),
                    train["epochs"] * math.ceil(n_fit / train["batch_size"]),
                    f"training step, batch {train['batch_size']} x 2 x {size} x {size}",
                ),
            ),
            data_mb=array_mb(n_train, 2, size, size) * 2,  # the slices as loaded and as stacked float32
        ),
        Probe(
            rule="replicas_generate",
            jobs=sample["n_replicas"],
            steps=(
                Step(
                    "gensynth.capacity:diffusion_sample_step",
                    sampling.kwargs(sampler="ddim", guidance_scale=sample["guidance_scale"]),
                    math.ceil(n_test / sample["batch_size"]) * sample["num_inference_steps"],
                    f"DDIM step, batch {sample['batch_size']}{' x 2 (guidance)' if guided else ''} x 2 x {size} x {size}",
                ),
            ),
            data_mb=array_mb(n_test, 2, size, size, itemsize=2),  # the replica's float16 images and masks
        ),
    ]
