"""The self-consuming loop: what each generation trains on, how it trains, how it samples.

Every chain belongs to a unit (an independent initial model: its own ``model_initial``, initial sets,
probes and real-data draws) and is one training-seed replicate within it. Generation g (0..G-1) of a
scenario starts from generation g-1's model (the unit's ``model_initial`` for g = 0; warm start, or a
fresh initialisation of the same UNet) and trains on

- ``full_synthetic``: only the ``N_next`` synthetic images of the generation before;
- ``matched_real``: ``N_next`` real training images that no earlier generation used instead (the same
  loop on real data: full_synthetic's control, matched in size, epochs and warm start);
- ``fresh``: the synthetic images plus ``n_real`` real training images that no earlier generation used;
- ``augmented_synthetic``: the synthetic images plus every real training image;

where "the generation before" of g = 0 is the first ``N_next`` images of the unit's initial synthetic
set, so generation 0 trains like every later one. It then samples ``N_next`` images (the next
generation's synthetic data) and ``N_eval`` images (for the metrics). The group's guidance weight
``w`` is the guidance scale ``1 + w``, since
``eps = (1 + w) eps_cond - w eps_null = eps_null + (1 + w)(eps_cond - eps_null)``.
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler

from ..diffusion import (
    DiffusionTrainConfig,
    SamplerSettings,
    UNetConfig,
    build_model,
    diffusion_trainer,
    load_model_checkpoint,
    make_train_scheduler,
    sample_shape,
    seeded_samples,
)
from ..errors import GensynthError
from ..io import sha256_file
from ..seeding import numpy_generator, sha256_seed
from ..training import ResumeFile, Trainer, train_epochs
from . import context_unet  # noqa: F401  (registers the group's architecture, for its checkpoints)
from .data import NUM_CLASSES, RealData
from .naming import NEW_REAL_IMAGES, SCENARIOS, unit_parts, w_label
from .settings import ModelSettings, NoiseSchedule, SamplingSettings, TrainSettings


def guidance_scale(w: float) -> float:
    return 1.0 + float(w)


def fresh_real_indices(num_train: int, n_real: int, generation: int, seed: int, unit: int, scenario: str) -> np.ndarray:
    """Generation g's new real images in ``scenario`` (fresh, matched_real): block g of the unit's seeded
    permutation of the real training split for that scenario, so never reused along a chain."""
    stop = (generation + 1) * n_real
    if stop > num_train:
        raise GensynthError(
            f"madness.{NEW_REAL_IMAGES[scenario]} = {n_real}: generation {generation} needs {stop} distinct real training images "
            f"({generation + 1} x {n_real}), the real training split has {num_train}"
        )
    order = numpy_generator(sha256_seed(*unit_parts(seed, unit), f"{scenario}-real-order")).permutation(num_train)
    return np.sort(order[generation * n_real : stop])


def first_images(images: tuple[np.ndarray, np.ndarray], n: int, path: str) -> tuple[np.ndarray, np.ndarray]:
    """A set's first n images, the synthetic images a generation trains on. Image i of a set depends only on its
    seed, so the first n of the initial set (N_with_w images) are a set of n like every later generation's."""
    x, y = images
    if len(y) < n:
        raise GensynthError(f"{path}: holds {len(y)} images, a generation trains on --n-next {n} of them")
    return x[:n], y[:n]


@dataclass
class TrainingSet:
    x: torch.Tensor  # (N, C, S, S) in [-1, 1]
    y: torch.Tensor  # (N,)
    n_synthetic: int
    real_indices: np.ndarray  # indices into the real training split


def training_set(
    scenario: str, generation: int, synthetic: tuple[np.ndarray, np.ndarray] | None, real: RealData, n_real: int, seed: int, unit: int
) -> TrainingSet:
    """Generation g's training data: ``synthetic`` (the generation before's images; None for matched_real)
    plus the scenario's real images."""
    if scenario in NEW_REAL_IMAGES:
        real_indices = fresh_real_indices(len(real.y_train), n_real, generation, seed, unit, scenario)
    elif scenario == "full_synthetic":
        real_indices = np.arange(0)
    elif scenario == "augmented_synthetic":
        real_indices = np.arange(len(real.y_train))
    else:
        raise GensynthError(f"scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    x_syn, y_syn = (real.x_train[:0], real.y_train[:0]) if synthetic is None else synthetic
    if x_syn.shape[1:] != real.x_train.shape[1:]:
        raise GensynthError(f"synthetic images {x_syn.shape[1:]} and real images {real.x_train.shape[1:]} differ in shape")
    x = np.concatenate([x_syn, real.x_train[real_indices]])
    y = np.concatenate([y_syn, real.y_train[real_indices]])
    return TrainingSet(torch.from_numpy(x), torch.from_numpy(y), len(y_syn), real_indices)


def train(trainer: Trainer, data: TrainingSet, epochs: int, resume: ResumeFile | None = None) -> list[float]:
    """``epochs`` passes over the data (resumable); returns each epoch's mean loss."""
    history = train_epochs(trainer, epochs, lambda epoch: {"loss": trainer.train_epoch(data.x, data.y)}, resume=resume, desc="training")
    return [record["loss"] for record in history]


def sample_images(model, scheduler_config: dict, n: int, w: float, settings: SamplerSettings, *seed_parts) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with labels 0, 1, ..., 9, 0, 1, ...; image i comes from the seed (*seed_parts, i) alone.

    Returns x (n, C, S, S) float32 clipped to [-1, 1] and y (n,) int64. The guidance scale is 1 + w.
    """
    labels = np.arange(n, dtype=np.int64) % NUM_CLASSES  # (n,)
    seeds = np.array([sha256_seed(*seed_parts, i) for i in range(n)], dtype=np.int64)
    settings = dataclasses.replace(settings, guidance_scale=guidance_scale(w))
    chunks = list(seeded_samples(model, scheduler_config, labels, seeds, settings))
    x = np.concatenate(chunks) if chunks else np.zeros((0, *sample_shape(model)), np.float32)
    return x.astype(np.float32), labels


def model_config(settings: ModelSettings, image_shape: tuple[int, ...]) -> UNetConfig:
    """The class-conditional UNet of ``--architecture`` for images of ``image_shape`` (C, S, S)."""
    if settings.n_t < 2 or not 0 < settings.beta_start < settings.beta_end < 1:
        raise GensynthError(f"--n-t {settings.n_t} (>= 2), --beta-start {settings.beta_start} < --beta-end {settings.beta_end} (both in (0, 1)): out of range")
    channels, size = image_shape[0], image_shape[-1]
    return UNetConfig(
        sample_size=size,
        in_channels=channels,
        out_channels=channels,
        num_classes=NUM_CLASSES,
        block_out_channels=tuple(settings.block_out_channels),
        layers_per_block=settings.layers_per_block,
        attention=settings.attention,
        architecture=settings.architecture,
        num_train_timesteps=settings.n_t if settings.architecture == "context_unet" else None,
    )


def train_scheduler(schedule: NoiseSchedule):
    return make_train_scheduler(schedule.n_t, beta_start=schedule.beta_start, beta_end=schedule.beta_end)


def resume_file(args: argparse.Namespace, output: str, inputs: dict[str, str]) -> ResumeFile:
    """The job's resume file; it continues only a run of the same flags on the same inputs."""
    settings = {k: v for k, v in vars(args).items() if not k.startswith("out") and k not in ("threads", "device", "checkpoint_every")}
    return ResumeFile.beside(output, args.checkpoint_every, settings=settings, inputs={k: sha256_file(p) for k, p in inputs.items()})


def train_config(settings: TrainSettings, seed: int) -> DiffusionTrainConfig:
    if settings.batch_size < 1 or settings.lr <= 0 or not 0.0 <= settings.cond_dropout < 1.0 or not 0.0 < settings.ema_decay < 1.0:
        raise GensynthError(
            f"training flags: --batch-size {settings.batch_size} (>= 1), --lr {settings.lr} (> 0), "
            f"--cond-dropout {settings.cond_dropout} (in [0, 1)), --ema-decay {settings.ema_decay} (in (0, 1)) out of range"
        )
    return DiffusionTrainConfig(lr=settings.lr, batch_size=settings.batch_size, cond_dropout=settings.cond_dropout, ema_decay=settings.ema_decay, seed=seed)


def sampler_settings(settings: SamplingSettings) -> SamplerSettings:
    if settings.num_inference_steps < 1 or settings.max_c < 1:
        raise GensynthError(f"--num-inference-steps {settings.num_inference_steps} and --max-c {settings.max_c}: expected >= 1")
    return SamplerSettings(settings.num_inference_steps, settings.max_c, sampler=settings.sampler, eta=settings.eta)


def starting_trainer(prev_model: str, warm_start: bool, config: DiffusionTrainConfig, init_seed: int, device) -> tuple[Trainer, UNetConfig]:
    """Warm: the previous generation's training state (weights, optimizer, EMA) continued on new data
    with this generation's own random stream. Cold: a freshly initialised model of the same settings."""
    previous = load_model_checkpoint(prev_model, use_ema=False, device=device)
    train_scheduler = DDPMScheduler.from_config(previous.scheduler_config)
    if not warm_start:
        torch.manual_seed(init_seed)
        return diffusion_trainer(build_model(previous.cfg).to(device), train_scheduler, config), previous.cfg
    if "trainer" not in previous.state:
        raise GensynthError(f"{prev_model}: holds no training state to warm-start from (save it with its Trainer)")
    trainer = diffusion_trainer(previous.model, train_scheduler, config)
    trainer.load_state_dict(previous.state["trainer"])
    trainer.generator.manual_seed(config.seed)
    return trainer, previous.cfg


def loop_parts(seed: int, scenario: str, w: float, unit: int, replicate: int) -> tuple:
    """What names one chain of a scenario's loop in its seeds: its unit and its replicate within the unit."""
    return (*unit_parts(seed, unit), scenario, w_label(w), "replicate", replicate)


def sample_seed_parts(seed: int, scenario: str, w: float, unit: int, replicate: int, generation: int, purpose: str) -> tuple:
    """Seed parts of one sampled set of a chain; image i of the set uses ``sha256_seed(*parts, i)``."""
    return (*loop_parts(seed, scenario, w, unit, replicate), generation, purpose)


def trainer_seed(seed: int, scenario: str, w: float, unit: int, replicate: int, generation: int) -> int:
    return sha256_seed(*loop_parts(seed, scenario, w, unit, replicate), generation, "train")


def init_seed(seed: int, scenario: str, w: float, unit: int, replicate: int, generation: int) -> int:
    """A cold-started generation's initial weights."""
    return sha256_seed(*loop_parts(seed, scenario, w, unit, replicate), generation, "init")


def initial_seed(seed: int, unit: int, purpose: str) -> int:
    """A seed of the unit's model_initial: "init" its initial weights, "train" its batches and noise."""
    return sha256_seed(*unit_parts(seed, unit), "initial", purpose)


def initial_set_parts(seed: int, unit: int, tag: str, w: float) -> tuple:
    """Seed parts of one of the unit's sets sampled from its model_initial (``tag`` names the set)."""
    return (*unit_parts(seed, unit), tag, w_label(w))
