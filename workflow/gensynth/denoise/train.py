"""Training MambaUV: Noise2Noise (a replicate in, its partner as the target) or clean targets, EMA, early stopping.

Noise2Noise (Lehtinen et al. 2018, arXiv:1803.04189): with x = s + n and y = s + n' two replicates of the same
clean spectrum s and independent zero-mean noise, E|f(x) - y|² = E|f(x) - s|² + E|n'|², so minimising the
loss against the noisy partner y has the same minimiser as against s, which no real measurement provides.
``target="clean"`` trains against s where the data have it (the phantom), the comparison arm.

The run is :func:`gensynth.training.train_epochs` over a :class:`~gensynth.training.Trainer` (AdamW + EMA):
after each epoch the EMA weights are scored on the validation rows (the same kind of target), the best are
kept, and training stops once ``patience`` epochs pass without a lower validation loss. The resume file holds
the trainer's state and the best EMA weights so far, so a killed job continues to the same weights.

The checkpoint (``mamba_tiny_uv_best.pt``) holds plain values only (``torch.load(weights_only=True)``): the
EMA weights, the model's config, the dose features' names and normalisation, the wavelength grid, and the
training's settings, data digests and best epoch.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import GensynthError
from ..io import sha256_file
from ..seeding import sha256_seed
from ..training import BestKeepingResumeFile, TrainConfig, Trainer, run_fingerprint, train_epochs
from .checkpoint import CHECKPOINT_FORMAT, read_denoiser_checkpoint
from .data import DoseTable, Manifest, load_tree_spectra, partner_pairs
from .kernels import warm_up_kernels
from .mamba import MambaUV, MambaUVConfig
from .settings import DenoiseTrainSettings, Target

log = logging.getLogger(__name__)

MODEL_SHAPE_KEYS = ("dose_dim", "d_model", "n_layers", "d_state", "expand", "d_conv", "dt_rank", "bidirectional")


def trainer_config(settings: DenoiseTrainSettings) -> TrainConfig:
    return TrainConfig(lr=settings.lr, batch_size=settings.batch_size, ema_decay=settings.ema_decay, grad_clip=settings.grad_clip, seed=settings.seed)


@dataclass
class PairedSpectra:
    """Training pairs, one per manifest row: the input, its target, the normalised dose."""

    inputs: torch.Tensor  # (N, L)
    targets: torch.Tensor  # (N, L)
    dose: torch.Tensor  # (N, D)

    def tensors(self) -> tuple[torch.Tensor, ...]:
        return self.inputs, self.targets, self.dose


def paired_spectra(manifest: Manifest, dose: DoseTable, length: int, target: Target, clean_root: Path | None) -> PairedSpectra:
    """Each manifest row's input and target: its partner's spectrum (noise2noise) or its own clean one.

    Every distinct file is read once (the Noise2Noise duplicates point at the same files)."""
    rows = manifest.rows
    if target == "noise2noise":
        inputs, targets = partner_pairs(manifest, length)
    else:
        if clean_root is None:
            raise GensynthError("clean-target training needs the clean spectra tree (--clean_dir)")
        relatives = list(manifest.files["relative_path"])
        index = {relative: i for i, relative in enumerate(relatives)}
        order = [index[r] for r in rows["relative_path"]]
        inputs = load_tree_spectra(manifest, length, relatives)[order]
        targets = load_tree_spectra(manifest, length, relatives, root=clean_root)[order]
    return PairedSpectra(torch.from_numpy(inputs), torch.from_numpy(targets), torch.from_numpy(manifest.dose(dose, rows)))


def mse_loss(model: torch.nn.Module, batch: tuple[torch.Tensor, ...], generator: torch.Generator) -> torch.Tensor:
    inputs, targets, dose = batch  # (B, L), (B, L), (B, D)
    return F.mse_loss(model(inputs, dose), targets)


def check_same_shape(state: dict[str, Any], config: MambaUVConfig, path: Path) -> None:
    """A warm start needs a checkpoint of this run's shape: one error listing every setting that differs."""
    theirs, ours = state["model_config"], config.to_dict()
    differ = [f"{k} {theirs.get(k)!r} (this run: {ours[k]!r})" for k in MODEL_SHAPE_KEYS if theirs.get(k) != ours[k]]
    if differ:
        raise GensynthError(f"{path}: a checkpoint of another shape: {', '.join(differ)}; expected the model settings of this run")


def warm_start(model: MambaUV, path: str | Path, dose: DoseTable) -> str:
    """Load ``path``'s weights into ``model`` (same shape, same dose features); returns its SHA-256 for the record."""
    path = Path(path)
    state = read_denoiser_checkpoint(path)
    check_same_shape(state, model.config, path)
    if list(state["dose_features"]) != list(dose.features):
        raise GensynthError(f"{path}: trained on dose features {state['dose_features']}; this run's are {list(dose.features)}")
    model.load_state_dict(state["state_dict"])
    return sha256_file(path)


@dataclass
class TrainResult:
    history: list[dict[str, Any]]  # one record per epoch: epoch, lr, train_loss, val_loss, best, seconds, attempt
    best_epoch: int
    best_val_loss: float
    best_weights: dict[str, torch.Tensor]  # EMA weights of the best epoch


def train_denoiser(
    train: PairedSpectra,
    val: PairedSpectra,
    config: MambaUVConfig,
    settings: DenoiseTrainSettings,
    device: torch.device,
    resume_path: Path,
    fingerprint: dict[str, Any],
    init_checkpoint: Path | None = None,
    dose: DoseTable | None = None,
    resume_every_s: float = 600.0,
) -> TrainResult:
    """Train (or resume) with early stopping; ``fingerprint``: what a resumed run must share (data digests...)."""
    torch.manual_seed(sha256_seed("denoise-initial-weights", settings.seed))
    model = MambaUV(config)
    if init_checkpoint is not None:
        fingerprint = {**fingerprint, "init_checkpoint": warm_start(model, init_checkpoint, dose)}
    model = model.to(device)
    warm_up_kernels(device)
    trainer = Trainer(model, mse_loss, trainer_config(settings))
    settings_key = dataclasses.asdict(settings)  # (the epochs too: they set the learning-rate schedule)
    resume = BestKeepingResumeFile(resume_path, run_fingerprint(model=config.to_dict(), settings=settings_key, **fingerprint), every_s=resume_every_s)

    def epoch(number: int) -> dict[str, Any]:
        for group in trainer.optimizer.param_groups:
            group["lr"] = settings.epoch_lr(number)
        train_loss = trainer.train_epoch(*train.tensors())
        val_loss = trainer.evaluate(*val.tensors(), seed=settings.seed)
        improved = resume.best is None or val_loss < resume.best["val_loss"]
        if improved:
            resume.best = {"epoch": number, "val_loss": val_loss, "weights": trainer.ema_state_dict()}
        return {"lr": settings.epoch_lr(number), "train_loss": train_loss, "val_loss": val_loss, "best": improved}

    def stop(history: list[dict[str, Any]]) -> bool:
        return bool(history) and history[-1]["epoch"] - resume.best["epoch"] >= settings.patience

    history = train_epochs(trainer, settings.epochs, epoch, resume=resume, stop=stop, desc=f"training ({settings.target})")
    if resume.best is None:
        raise GensynthError("training ran no epoch (epochs must be at least 1)")
    if history[-1]["epoch"] < settings.epochs:  # stopped early: the final state, so that a rerun goes straight to the end
        resume.save({"model": trainer.model.state_dict(), "trainer": trainer.state_dict(), "history": history})
    return TrainResult(history, resume.best["epoch"], resume.best["val_loss"], {k: v.cpu() for k, v in resume.best["weights"].items()})


def checkpoint_state(
    result: TrainResult, config: MambaUVConfig, dose: DoseTable, grid: np.ndarray, settings: DenoiseTrainSettings, data: dict[str, Any]
) -> dict[str, Any]:
    """The saved checkpoint: plain values only."""
    return {
        "format": CHECKPOINT_FORMAT,
        "model_config": config.to_dict(),
        "state_dict": result.best_weights,
        "ema": True,
        "dose_features": list(dose.features),
        "dose_stats": dose.stats(),
        "wavelength_grid": torch.from_numpy(np.asarray(grid, np.float64)),
        "target": settings.target,
        "best_epoch": result.best_epoch,
        "best_val_loss": result.best_val_loss,
        "train": dataclasses.asdict(settings),
        "data": data,
    }
