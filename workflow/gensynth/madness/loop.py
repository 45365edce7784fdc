"""The self-consuming loop: what each generation trains on, how it trains, how it samples.

Generation g (0..G-1) of a scenario starts from generation g-1's model (``model_initial``
for g = 0; warm start, or a fresh initialisation of the same UNet) and trains on

- ``full_synthetic``: only the synthetic images of the generation before;
- ``fresh``: those plus ``n_real`` real training images that no earlier generation used;
- ``augmented_synthetic``: those plus every real training image;

where "the generation before" of g = 0 is the initial model's synthetic set. It then samples
``N_next`` images (the next generation's synthetic data) and ``N_eval`` images (for the
metrics). The guidance weight ``w`` of the seed is the guidance scale ``1 + w``, since
``eps = (1 + w) eps_cond - w eps_null = eps_null + (1 + w)(eps_cond - eps_null)``.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import numpy as np
import torch

from ..diffusion import Trainer, TrainConfig, make_sampler, prepare_for_inference, sample
from ..errors import GensynthError
from ..progress import progress
from ..seeding import numpy_generator, sha256_seed, torch_generator
from .data import NUM_CLASSES, RealData
from .naming import SCENARIOS, w_label


def guidance_scale(w: float) -> float:
    return 1.0 + float(w)


def fresh_real_indices(num_train: int, n_real: int, generation: int, seed: int) -> np.ndarray:
    """Generation g's real images in ``fresh``: block g of one seeded permutation, so never reused."""
    stop = (generation + 1) * n_real
    if stop > num_train:
        raise GensynthError(
            f"madness.scenarios.fresh.n_real = {n_real}: generation {generation} needs {stop} distinct real training images "
            f"({generation + 1} x {n_real}), the real training split has {num_train}"
        )
    order = numpy_generator(sha256_seed("madness", seed, "fresh-real-order")).permutation(num_train)
    return np.sort(order[generation * n_real : stop])


@dataclass
class TrainingSet:
    x: torch.Tensor  # (N, C, S, S) in [-1, 1]
    y: torch.Tensor  # (N,)
    n_synthetic: int
    real_indices: np.ndarray  # indices into the real training split


def training_set(scenario: str, generation: int, synthetic: tuple[np.ndarray, np.ndarray], real: RealData, n_real: int, seed: int) -> TrainingSet:
    x_syn, y_syn = synthetic
    if scenario == "full_synthetic":
        real_indices = np.arange(0)
    elif scenario == "fresh":
        real_indices = fresh_real_indices(len(real.y_train), n_real, generation, seed)
    elif scenario == "augmented_synthetic":
        real_indices = np.arange(len(real.y_train))
    else:
        raise GensynthError(f"scenario {scenario!r}: expected one of {', '.join(SCENARIOS)}")
    if x_syn.shape[1:] != real.x_train.shape[1:]:
        raise GensynthError(f"synthetic images {x_syn.shape[1:]} and real images {real.x_train.shape[1:]} differ in shape")
    x = np.concatenate([x_syn, real.x_train[real_indices]])
    y = np.concatenate([y_syn, real.y_train[real_indices]])
    return TrainingSet(torch.from_numpy(x), torch.from_numpy(y), len(y_syn), real_indices)


def train(trainer: Trainer, data: TrainingSet, epochs: int) -> list[float]:
    """``epochs`` passes over the data; returns each epoch's mean loss."""
    return [trainer.train_epoch(data.x, data.y) for _ in progress(range(epochs), desc="Training", unit="epoch")]


@dataclass
class SamplingConfig:
    sampler: str = "ddim"  # ddim or ddpm (the seed's ancestral sampler)
    num_inference_steps: int = 25
    eta: float = 0.0  # DDIM stochasticity
    batch_size: int = 500  # the seed's max_c


def sample_images(unet, scheduler_config: dict, n: int, w: float, cfg: SamplingConfig, *seed_parts) -> tuple[np.ndarray, np.ndarray]:
    """``n`` images with labels 0, 1, ..., 9, 0, 1, ...; image i comes from the seed (*seed_parts, i) alone.

    Returns x (n, C, S, S) float32 clipped to [-1, 1] and y (n,) int64.
    """
    unet = prepare_for_inference(unet)
    labels = torch.arange(n) % NUM_CLASSES  # (n,)
    chunks = []
    for start in range(0, n, cfg.batch_size):
        stop = min(start + cfg.batch_size, n)
        generators = [torch_generator(sha256_seed(*seed_parts, i), unet.device) for i in range(start, stop)]
        x = sample(
            unet, make_sampler(cfg.sampler, scheduler_config), labels[start:stop], generators,
            cfg.num_inference_steps, guidance_scale=guidance_scale(w), eta=cfg.eta,
        )  # (b, C, S, S)
        chunks.append(x.clamp(-1.0, 1.0).cpu().numpy())
    x = np.concatenate(chunks) if chunks else np.zeros((0, unet.config.in_channels, unet.config.sample_size, unet.config.sample_size), np.float32)
    return x.astype(np.float32), labels.numpy().astype(np.int64)


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training (gensynth.diffusion.TrainConfig)")
    group.add_argument("--lr", type=float, default=TrainConfig.lr)
    group.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    group.add_argument("--cond-dropout", type=float, default=TrainConfig.cond_dropout, help="probability of the null condition")
    group.add_argument("--ema-decay", type=float, default=TrainConfig.ema_decay)


def train_config(args: argparse.Namespace, seed: int) -> TrainConfig:
    if args.batch_size < 1 or args.lr <= 0 or not 0.0 <= args.cond_dropout < 1.0 or not 0.0 < args.ema_decay < 1.0:
        raise GensynthError(
            f"training flags: --batch-size {args.batch_size} (>= 1), --lr {args.lr} (> 0), "
            f"--cond-dropout {args.cond_dropout} (in [0, 1)), --ema-decay {args.ema_decay} (in (0, 1)) out of range"
        )
    return TrainConfig(lr=args.lr, batch_size=args.batch_size, cond_dropout=args.cond_dropout, ema_decay=args.ema_decay, seed=seed)


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("sampling")
    group.add_argument("--sampler", choices=("ddim", "ddpm"), default=SamplingConfig.sampler)
    group.add_argument("--num-inference-steps", type=int, default=SamplingConfig.num_inference_steps)
    group.add_argument("--eta", type=float, default=SamplingConfig.eta)
    group.add_argument("--sample-batch-size", type=int, default=SamplingConfig.batch_size, help="images per sampling batch (max_c)")


def sampling_config(args: argparse.Namespace) -> SamplingConfig:
    if args.num_inference_steps < 1 or args.sample_batch_size < 1:
        raise GensynthError(f"--num-inference-steps {args.num_inference_steps} and --sample-batch-size {args.sample_batch_size}: expected >= 1")
    return SamplingConfig(args.sampler, args.num_inference_steps, args.eta, args.sample_batch_size)


def sample_seed_parts(seed: int, scenario: str, w: float, generation: int, purpose: str) -> tuple:
    """Seed parts of one sampled set; image i of the set uses ``sha256_seed(*parts, i)``."""
    return ("madness", seed, scenario, w_label(w), generation, purpose)


def trainer_seed(seed: int, scenario: str, w: float, generation: int) -> int:
    return sha256_seed("madness", seed, scenario, w_label(w), generation, "train")
