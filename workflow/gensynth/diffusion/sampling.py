"""Seeded sampling: DDIM or DDPM with classifier-free guidance, one random stream per sample.

Guidance (Ho & Salimans 2022): ``eps = eps(x_t, null) + s (eps(x_t, y) - eps(x_t, null))`` with scale ``s``.

Every sample draws its initial noise and its per-step noise from its own ``torch.Generator``
(diffusers' ``randn_tensor`` with a list of generators), created on the CPU from the sample's seed,
so sample *i* depends only on ``seeds[i]``: not on the batch it was drawn in, nor on the device
the model runs on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers import DDIMScheduler
from diffusers.utils.torch_utils import randn_tensor

from ..device import autocast
from ..progress import progress
from ..seeding import torch_generator
from .models import model_device, null_label, sample_shape
from .schedule import make_sampler
from .settings import SamplerKind


@dataclass
class SamplerSettings:
    num_inference_steps: int  # denoising steps
    batch_size: int  # samples per model call (does not change the samples)
    sampler: SamplerKind = "ddim"  # ddim, or ddpm (ancestral; num_inference_steps = T is Ho et al.'s sampler)
    eta: float = 0.0  # DDIM stochasticity (0: deterministic given the initial noise)
    guidance_scale: float = 1.0  # classifier-free guidance scale s (1: none)


def initial_noise(shape: tuple[int, ...], generators: list[torch.Generator], device: torch.device) -> torch.Tensor:
    """x_T ~ N(0, I) of shape (B, *sample_shape), sample i from ``generators[i]``, moved to ``device``."""
    return randn_tensor(shape, generator=list(generators), device=device, dtype=torch.float32)


@torch.no_grad()
def sample(
    model: torch.nn.Module,
    scheduler,
    labels: torch.Tensor | None,
    generators: list[torch.Generator],
    settings: SamplerSettings,
    show_progress: bool | None = None,
) -> torch.Tensor:
    """Draw ``len(generators)`` samples, sample *i* from ``generators[i]`` alone; returns (B, *sample_shape) float32.

    ``labels`` (B,) are the condition tokens, None for a model without classes. ``scheduler`` is a
    DDIMScheduler (``settings.eta`` is its stochasticity) or a DDPMScheduler. On CUDA the model runs
    under fp16 autocast; the scheduler's arithmetic stays float32.
    """
    size = len(generators)
    if labels is not None and len(labels) != size:
        raise ValueError(f"sample: {size} generators for {len(labels)} labels; pass one per sample")
    device = model_device(model)
    null = null_label(model)
    # 1. x_T ~ N(0, I), each sample from its own generator
    x = initial_noise((size, *sample_shape(model)), generators, device) * scheduler.init_noise_sigma  # (B, *S)
    scheduler.set_timesteps(settings.num_inference_steps, device=device)
    guided = settings.guidance_scale != 1.0 and null is not None
    y = None if labels is None else labels.to(device)  # (B,)
    if guided:
        y = torch.cat([y, torch.full_like(y, null)])  # (2B,): conditional, then null
    step_kwargs = {"eta": settings.eta} if isinstance(scheduler, DDIMScheduler) else {}
    model.eval()
    for t in progress(scheduler.timesteps, desc="Sampling", unit="step", show=show_progress):
        model_in = scheduler.scale_model_input(x, t)
        model_in = torch.cat([model_in, model_in]) if guided else model_in
        # 2. predict eps; with guidance, conditional and null passes in one batch
        with autocast(device):
            eps = model(model_in, t, class_labels=y).sample.float()
        if guided:
            eps_cond, eps_null = eps.chunk(2)
            eps = eps_null + settings.guidance_scale * (eps_cond - eps_null)
        # 3. x_{t-1} from the scheduler; per-step noise (DDPM, or DDIM with eta > 0) per sample too
        x = scheduler.step(eps, t, x, generator=list(generators), **step_kwargs).prev_sample
    return x


def seeded_samples(
    model: torch.nn.Module,
    scheduler_config: dict[str, Any],
    labels: np.ndarray | None,
    seeds: np.ndarray,
    settings: SamplerSettings,
    show_progress: bool | None = None,
) -> Iterator[np.ndarray]:
    """The samples of ``seeds`` (and ``labels``, one per seed), batch by batch: float32 (b, *sample_shape) in [-1, 1].

    Sample i comes from a CPU generator seeded with ``seeds[i]`` alone, so neither the batch size
    nor the model's device changes it. ``scheduler_config`` is the training noise schedule.
    """
    if labels is not None and len(labels) != len(seeds):
        raise ValueError(f"seeded_samples: {len(labels)} labels for {len(seeds)} seeds")
    model = prepare_for_inference(model)
    scheduler = make_sampler(settings.sampler, scheduler_config)
    starts = range(0, len(seeds), settings.batch_size)
    for start in progress(starts, desc="Sample batches", unit="batch", show=show_progress):
        stop = start + settings.batch_size
        generators = [torch_generator(int(seed)) for seed in seeds[start:stop]]
        batch_labels = None if labels is None else torch.from_numpy(np.asarray(labels[start:stop], dtype=np.int64))
        x = sample(model, scheduler, batch_labels, generators, settings)
        yield x.clamp(-1.0, 1.0).cpu().numpy()


def prepare_for_inference(model: torch.nn.Module) -> torch.nn.Module:
    """Channels-last memory format on CUDA for 2-D models, where convolutions run faster in it."""
    if model_device(model).type == "cuda" and len(sample_shape(model)) == 3:
        model = model.to(memory_format=torch.channels_last)
    return model.eval()
