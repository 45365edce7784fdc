"""The denoise module's expensive steps for a capacity plan (gensynth.capacity): MambaUV's training per arm and
seed, and each shard of the manifests' denoising.

Counts follow the phantom: (treatments x samples x angles x replicates) spectra, plus the extra pairings' rows,
less the panel's and the validation's held-out groups (whole samples, both angles) for training; the users'
manifests give their own row counts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..capacity import Probe, Step, array_mb
from . import dag

DOSE_FEATURES = 8  # the FiLM input's width stands in for the dose table's (MambaUV's cost hardly depends on it)


def corpus(section: dict[str, Any]) -> tuple[int, int, int, int]:
    """(training rows, manifest rows to denoise per manifest, spectrum length, staging rows)."""
    phantom = section["phantom"]
    length = round((phantom["wavelength_max"] - phantom["wavelength_min"]) / phantom["wavelength_step"]) + 1
    treatments = len(phantom["doses"])
    per_group = phantom["replicates"]
    groups = (treatments - 1) * len(phantom["samples"]) * len(phantom["angles"]) + len(phantom["last_treatment_samples"]) * len(phantom["angles"])
    rows = groups * per_group + phantom["extra_pairing_groups"] * per_group
    held_out = (phantom["panel_groups"] + phantom["val_groups"]) * per_group
    staging = treatments * len(phantom["staging_last_treatment_samples"]) * len(phantom["angles"]) * per_group
    return rows - held_out, rows, length, staging


def train_step(device, length: int, batch: int, model: dict[str, Any]) -> Callable[[int], None]:
    """One step of MambaUV's training on a batch of spectra (mean squared error to the targets)."""
    import torch

    from ..training import TrainConfig, Trainer
    from .mamba import MambaUV, MambaUVConfig
    from .train import mse_loss

    net = MambaUV(MambaUVConfig(dose_dim=DOSE_FEATURES, **model)).to(device)
    trainer = Trainer(net, mse_loss, TrainConfig(batch_size=batch))
    inputs, targets = torch.rand(batch, length, device=device), torch.rand(batch, length, device=device)
    dose = torch.rand(batch, DOSE_FEATURES, device=device)

    def run(n: int) -> None:
        for _ in range(n):
            trainer.train_step(inputs, targets, dose)

    return run


def denoise_step(device, length: int, batch: int, model: dict[str, Any]) -> Callable[[int], None]:
    """One batch of inference (the model's forward pass without gradients)."""
    import torch

    from .mamba import MambaUV, MambaUVConfig

    net = MambaUV(MambaUVConfig(dose_dim=DOSE_FEATURES, **model)).to(device).eval()
    spectra, dose = torch.rand(batch, length, device=device), torch.rand(batch, DOSE_FEATURES, device=device)

    def run(n: int) -> None:
        with torch.no_grad():
            for _ in range(n):
                net(spectra, dose)

    return run


def probes(section: dict[str, Any]) -> list[Probe]:
    if section["data"]["source"] != "phantom":
        raise NotImplementedError("denoise capacity: only the phantom's counts are known before the data")
    n_train, n_rows, length, staging = corpus(section)
    model = {key: section["model"][key] for key in ("d_model", "n_layers", "d_state", "expand", "d_conv", "bidirectional")}
    train, infer = section["train"], section["infer"]
    shards = len(dag.shard_ids(section))
    training = Step(
        "gensynth.denoise.capacity:train_step",
        {"length": length, "batch": train["batch_size"], "model": model},
        train["epochs"] * math.ceil(n_train / train["batch_size"]),
        f"training step, batch {train['batch_size']} x {length} points",
    )
    manifests = dag.denoised_manifests(section)
    largest = max(n_rows, staging if "staging" in manifests else 0)
    inference = Step(
        "gensynth.denoise.capacity:denoise_step",
        {"length": length, "batch": infer["batch_size"], "model": model},
        math.ceil(largest / shards / infer["batch_size"]),
        f"inference batch, {infer['batch_size']} x {length} points",
    )
    return [
        Probe("denoise_train", len(dag.arms(section)) * len(train["seeds"]), (training,), array_mb(n_rows, 3, length)),
        Probe("denoise_shard", shards * len(manifests), (inference,), array_mb(2 * infer["batch_size"] * 4, length)),
    ]
